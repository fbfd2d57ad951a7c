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
    // What the server logs (a model that stops loading, internal errors, refused events,
    // signing keys that do not open) goes to stderr.
    crate::log_to_stderr(&a.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .or_exit(SERVER_START, "cannot start the async runtime")?;
    match &a.command {
        Some(ServerCommand::NewSecretKey { standby }) => return new_secret_key(&a, *standby),
        Some(ServerCommand::PromoteSecretKey) => return promote_secret_key(&a),
        _ => {}
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
        report_sealing(&store, &key_source);
        match &a.command {
            Some(ServerCommand::CreateAdmin { organization, user }) => create_admin(&store, organization, user).await,
            Some(ServerCommand::ResetBundleKey { organization }) => reset_bundle_key(&store, organization).await,
            Some(ServerCommand::NewSecretKey { .. } | ServerCommand::PromoteSecretKey) => {
                unreachable!("handled before the database is opened")
            }
            None => {
                if a.secret_key_file.is_none()
                    && std::env::var_os(SECRET_KEY_ENV).is_none()
                    && let Some(dir) = sqlite_dir(&a.database_url)
                {
                    tracing::warn!(
                        "the secret key ({key_source}) is beside the database in {}: a copy of that folder holds both; \
                         for production keep it elsewhere (--secret-key-file) and back it up apart",
                        dir.display()
                    );
                }
                serve(store, &a).await
            }
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
        let keys = SecretKeys::add_to_file(&path, false).map_err(start)?;
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

/// What the start did to the bundle signing seeds, and which organizations need a new key.
fn report_sealing(store: &Store, key_source: &str) {
    let report = store.sealing();
    let ids = store.secret_key_ids();
    if report.resealed > 0 {
        eprintln!(
            "sealed {} bundle signing key(s) with secret key {}{}",
            report.resealed,
            ids[0],
            if ids.len() > 1 {
                format!("; older keys in {key_source} can go once every server has started")
            } else {
                String::new()
            }
        );
    }
    if report.rotated > 0 {
        eprintln!(
            "replaced {} bundle signing key(s) stored unsealed by an earlier version with new sealed ones, each \
             endorsed by the one it replaces: agents follow with their next bundle",
            report.rotated
        );
    }
    for (org_id, why) in &report.damaged {
        tracing::error!(
            "organization {org_id}: {why}. Its agents receive no new bundle until \
             `portcullis server reset-bundle-key --organization NAME` gives it a new key (they then enroll again)"
        );
    }
}

/// The key file `new-secret-key` and `promote-secret-key` work on.
fn key_file(a: &ServerArgs) -> anyhow::Result<PathBuf> {
    match (&a.secret_key_file, sqlite_dir(&a.database_url)) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(dir)) => Ok(dir.join("secret.key")),
        (None, None) => Err(fail(2, "give --secret-key-file FILE: the key file to make or add a key to")),
    }
}

/// `server new-secret-key`: a new key first (or, `standby`, second) in the key file.
fn new_secret_key(a: &ServerArgs, standby: bool) -> anyhow::Result<ExitCode> {
    let path = key_file(a)?;
    let keys = SecretKeys::add_to_file(&path, standby).or_exit(1, format!("cannot add a key to {}", path.display()))?;
    let ids = keys.ids();
    if standby && ids.len() > 1 {
        println!(
            "{}: new secret key {} second (standby: it unseals, {} still seals). Copy the file to every server and \
             restart each; then run `portcullis server promote-secret-key` and copy and restart again.",
            path.display(),
            ids[1],
            ids[0]
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: new secret key {} first", path.display(), ids[0]);
    if ids.len() > 1 {
        println!(
            "older keys kept after it: {}. Restart the server: its start seals the bundle signing keys with {}; \
             then the older lines can be removed. (Several servers on one database: use --standby instead.)",
            ids[1..].join(", "),
            ids[0]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `server promote-secret-key`: the standby key seals from the next start.
fn promote_secret_key(a: &ServerArgs) -> anyhow::Result<ExitCode> {
    let path = key_file(a)?;
    let keys = SecretKeys::promote_in_file(&path).or_exit(1, format!("cannot promote a key in {}", path.display()))?;
    let ids = keys.ids();
    println!(
        "{}: secret key {} now seals ({} still unseals). Copy the file to every server and restart each; each \
         start seals the bundle signing keys with {}; then the older lines can be removed.",
        path.display(),
        ids[0],
        ids[1..].join(", "),
        ids[0]
    );
    Ok(ExitCode::SUCCESS)
}

/// `server reset-bundle-key`: a new, unendorsed signing key for one organization.
async fn reset_bundle_key(store: &Store, organization: &str) -> anyhow::Result<ExitCode> {
    let org_id = store
        .organization_id(organization)
        .await
        .or_exit(SERVER_START, "cannot read the organizations")?
        .ok_or_else(|| fail(2, format!("no organization {organization:?}")))?;
    let change = portcullis_store::Change { org_id, actor: "server command reset-bundle-key" };
    let key = store.reset_bundle_key(change).await.or_exit(1, format!("cannot reset the key of {organization:?}"))?;
    println!(
        "{organization}: new bundle signing key {}. Agents enrolled before keep their last policy and report newer \
         bundles as refused (Computers page) until they enroll again with a token of their group.",
        key.to_hex()
    );
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
