//! `portcullis server`: open the database, bind, serve; `server create-admin`,
//! `server new-secret-key`.

use crate::args::{ServerArgs, ServerCommand};
use crate::exit::{OrExit, fail};
use portcullis_store::{Role, SecretKeys, Store, StoreError};
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
        .or_exit(SERVER_START, "cannot start the async runtime")?;
    if let Some(ServerCommand::NewSecretKey) = &a.command {
        return new_secret_key(&a);
    }
    let (keys, key_source) = secret_keys(&a)?;
    runtime.block_on(async {
        // The store makes a SQLite file's directory (0700) and the file (0600) itself.
        let store = Store::connect(&a.database_url, keys).await.map_err(|e| match e {
            StoreError::Secret(_) => {
                anyhow::Error::new(e).context(format!("with the secret keys from {key_source}")).context(
                    crate::exit::Exit { code: SERVER_START, message: format!("{} cannot be opened", a.database_url) },
                )
            }
            e => anyhow::Error::new(e).context(crate::exit::Exit {
                code: SERVER_START,
                message: format!("{} cannot be opened", a.database_url),
            }),
        })?;
        if store.resealed() > 0 {
            let ids = store.secret_key_ids();
            eprintln!(
                "sealed {} bundle signing key(s) with secret key {}{}",
                store.resealed(),
                ids[0],
                if ids.len() > 1 {
                    format!("; the older keys in {key_source} are no longer needed here")
                } else {
                    String::new()
                }
            );
        }
        match &a.command {
            Some(ServerCommand::CreateAdmin { organization, user }) => create_admin(&store, organization, user).await,
            Some(ServerCommand::NewSecretKey) => unreachable!("handled before the database is opened"),
            None => serve(store, &a).await,
        }
    })
}

/// The environment variable that may hold the secret keys (hex, separated by commas).
const SECRET_KEY_ENV: &str = "PORTCULLIS_SECRET_KEY";

/// The directory of a SQLite database URL (none for PostgreSQL or an in-memory database).
fn sqlite_dir(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return None;
    }
    Some(std::path::Path::new(path).parent().map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf))
}

/// The secret keys and where they came from: --secret-key-file, the environment, or (SQLite
/// only) secret.key beside the database, made on first start.
fn secret_keys(a: &ServerArgs) -> anyhow::Result<(SecretKeys, String)> {
    let start = |e: portcullis_store::SecretKeyError| {
        anyhow::Error::new(e).context(crate::exit::Exit { code: SERVER_START, message: "no secret key".into() })
    };
    if let Some(path) = &a.secret_key_file {
        return Ok((SecretKeys::read_file(path).map_err(start)?, path.display().to_string()));
    }
    if let Ok(text) = std::env::var(SECRET_KEY_ENV) {
        return Ok((SecretKeys::parse(&text, SECRET_KEY_ENV).map_err(start)?, SECRET_KEY_ENV.to_owned()));
    }
    let Some(dir) = sqlite_dir(&a.database_url) else {
        return Err(fail(
            SERVER_START,
            format!(
                "{}: a PostgreSQL database needs the server's secret key, kept outside the database and the same on \
                 every server: make one with `portcullis server new-secret-key --secret-key-file \
                 /etc/portcullis/secret.key` and give --secret-key-file (or put the key in {SECRET_KEY_ENV})",
                a.database_url
            ),
        ));
    };
    let path = dir.join("secret.key");
    let keys = if path.exists() {
        SecretKeys::read_file(&path).map_err(start)?
    } else {
        let keys = SecretKeys::add_to_file(&path).map_err(start)?;
        eprintln!(
            "made the server's secret key {} (it seals the bundle signing keys in the database): {}; back it up \
             apart from the database",
            keys.ids()[0],
            path.display()
        );
        keys
    };
    Ok((keys, path.display().to_string()))
}

/// `server new-secret-key`: a new key first in the key file, the older ones kept after it.
fn new_secret_key(a: &ServerArgs) -> anyhow::Result<ExitCode> {
    let path = match (&a.secret_key_file, sqlite_dir(&a.database_url)) {
        (Some(p), _) => p.clone(),
        (None, Some(dir)) => dir.join("secret.key"),
        (None, None) => return Err(fail(2, "give --secret-key-file FILE: the key file to make or add a key to")),
    };
    let keys = SecretKeys::add_to_file(&path).or_exit(1, format!("cannot add a key to {}", path.display()))?;
    let ids = keys.ids();
    println!("{}: new secret key {} first", path.display(), ids[0]);
    if ids.len() > 1 {
        println!(
            "older keys kept after it: {}. Copy the file to every server and restart them: each start seals the \
             bundle signing keys with {}; then the older lines can be removed.",
            ids[1..].join(", "),
            ids[0]
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_admin(store: &Store, organization: &str, user: &str) -> anyhow::Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).or_exit(2, "reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.len() < 8 {
        return Err(fail(2, "give a password of at least 8 characters on stdin"));
    }
    let org = match store.create_organization(organization).await {
        Ok(id) => id,
        Err(StoreError::Exists { .. }) => store.organization_id(organization).await?.unwrap_or_default(),
        Err(e) => return Err(e.into()),
    };
    store.create_user(org, user, Role::Admin, password).await.or_exit(2, format!("cannot create user {user:?}"))?;
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
        std::fs::create_dir_all(&a.tls_dir).or_exit(SERVER_START, format!("cannot create {}", a.tls_dir.display()))?;
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            names.push(host.trim().to_owned());
        }
        let rcgen::CertifiedKey { cert: c, signing_key } =
            rcgen::generate_simple_self_signed(names).or_exit(SERVER_START, "generating a TLS certificate")?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .and_then(|mut f| f.write_all(signing_key.serialize_pem().as_bytes()))
            .or_exit(SERVER_START, format!("writing {}", key.display()))?;
        std::fs::write(&cert, c.pem()).or_exit(SERVER_START, format!("writing {}", cert.display()))?;
        eprintln!(
            "generated a self-signed TLS certificate: {} (give --tls-cert/--tls-key to use your own)",
            cert.display()
        );
    }
    Ok((cert, key))
}

async fn serve(store: Store, a: &ServerArgs) -> anyhow::Result<ExitCode> {
    let listener =
        std::net::TcpListener::bind(&a.listen).or_exit(SERVER_START, format!("cannot listen on {}", a.listen))?;
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
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
            .await
            .or_exit(SERVER_START, format!("TLS certificate {} / key {}", cert.display(), key.display()))?;
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
