//! `portcullis server`: open the database, bind, serve; `server create-admin`.

use crate::args::{ServerArgs, ServerCommand};
use crate::exit::fail;
use portcullis_store::{Role, Store, StoreError};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when the server cannot start (database, address).
const SERVER_START: u8 = 7;

pub fn run(a: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(SERVER_START, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        // The store makes a SQLite file's directory (0700) and the file (0600) itself.
        let store = Store::connect(&a.database_url)
            .await
            .map_err(|e| fail(SERVER_START, format!("{}: {e}", a.database_url)))?;
        match &a.command {
            Some(ServerCommand::CreateAdmin { organization, user }) => create_admin(&store, organization, user).await,
            None => serve(store, &a).await,
        }
    })
}

async fn create_admin(store: &Store, organization: &str, user: &str) -> anyhow::Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| fail(2, format!("reading the password from stdin: {e}")))?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.len() < 8 {
        return Err(fail(2, "give a password of at least 8 characters on stdin"));
    }
    let org = match store.create_organization(organization).await {
        Ok(id) => id,
        Err(StoreError::Exists { .. }) => store.organization_id(organization).await?.unwrap_or_default(),
        Err(e) => return Err(e.into()),
    };
    store.create_user(org, user, Role::Admin, password).await.map_err(|e| fail(2, e.to_string()))?;
    store
        .audit(
            org,
            "command line",
            "create",
            &format!("user {user}"),
            None,
            Some(&format!("{{\"name\":{user:?},\"role\":\"admin\"}}")),
        )
        .await?;
    println!("admin {user:?} of organization {organization:?} created");
    Ok(ExitCode::SUCCESS)
}

/// The certificate and key to serve with: the ones given, or a self-signed pair generated on
/// first start (kept in `dir`, the key readable by root only).
fn tls_files(a: &ServerArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    if let (Some(c), Some(k)) = (&a.tls_cert, &a.tls_key) {
        return Ok((c.clone(), k.clone()));
    }
    let (cert, key) = (a.tls_dir.join("cert.pem"), a.tls_dir.join("key.pem"));
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(&a.tls_dir)
            .map_err(|e| fail(SERVER_START, format!("cannot create {}: {e}", a.tls_dir.display())))?;
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            names.push(host.trim().to_owned());
        }
        let rcgen::CertifiedKey { cert: c, signing_key } = rcgen::generate_simple_self_signed(names)
            .map_err(|e| fail(SERVER_START, format!("generating a TLS certificate: {e}")))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .and_then(|mut f| f.write_all(signing_key.serialize_pem().as_bytes()))
            .map_err(|e| fail(SERVER_START, format!("writing {}: {e}", key.display())))?;
        std::fs::write(&cert, c.pem()).map_err(|e| fail(SERVER_START, format!("writing {}: {e}", cert.display())))?;
        eprintln!(
            "generated a self-signed TLS certificate: {} (give --tls-cert/--tls-key to use your own)",
            cert.display()
        );
    }
    Ok((cert, key))
}

async fn serve(store: Store, a: &ServerArgs) -> anyhow::Result<ExitCode> {
    let listener = std::net::TcpListener::bind(&a.listen)
        .map_err(|e| fail(SERVER_START, format!("cannot listen on {}: {e}", a.listen)))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = portcullis_server::AppState::new(store, !a.plain_http);
    let app = portcullis_server::app(state);
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    if a.plain_http {
        println!(
            "portcullis server listening on http://{addr}/ (console at /, REST API under /api, OpenAPI at /api/openapi.json)"
        );
        axum_server::from_tcp(listener)?
            .handle(handle)
            .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await?;
    } else {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (cert, key) = tls_files(a)?;
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key).await.map_err(|e| {
            fail(SERVER_START, format!("TLS certificate {} / key {}: {e}", cert.display(), key.display()))
        })?;
        println!(
            "portcullis server listening on https://{addr}/ (console at /, REST API under /api, OpenAPI at /api/openapi.json)"
        );
        axum_server::from_tcp_rustls(listener, tls)?
            .handle(handle)
            .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await?;
    }
    Ok(ExitCode::SUCCESS)
}
