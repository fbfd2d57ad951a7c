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
    if let Some(ServerCommand::Restore { file: Some(file), .. }) = &a.command {
        return runtime.block_on(restore(&a, file, keys, &key_source));
    }
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
            Some(ServerCommand::Backup { file }) => backup(&store, &a, file).await,
            Some(ServerCommand::Restore { versions_only: true, .. }) => continue_versions(&store).await,
            Some(ServerCommand::Restore { .. }) => unreachable!("handled before the database is opened"),
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

/// The file of a SQLite database URL (none for PostgreSQL or an in-memory database).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The directory of a SQLite database URL.
fn sqlite_dir(url: &str) -> Option<PathBuf> {
    let path = sqlite_path(url)?;
    Some(path.parent().map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf))
}

/// Hold `DB.lock` exclusively for as long as the file returned is open: one server per SQLite
/// file, and no restore under a running server.
fn lock_sqlite(db: &std::path::Path, doing: &str) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = PathBuf::from(format!("{}.lock", db.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .or_exit(SERVER_START, format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(fail(
            SERVER_START,
            format!(
                "cannot {doing}: a portcullis server runs on {} (it holds {}); stop it first (several servers share \
                 a PostgreSQL database, never a SQLite file)",
                db.display(),
                path.display()
            ),
        ));
    }
    Ok(file)
}

/// `server backup FILE`: a consistent copy of the SQLite database while it serves.
async fn backup(store: &Store, a: &ServerArgs, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    if store.backend() != portcullis_store::Backend::Sqlite {
        return Err(fail(
            2,
            format!(
                "{} is PostgreSQL: back it up with `pg_dump --format=custom --file FILE URL` (and keep the secret key \
                 file apart); after `pg_restore --clean --if-exists --dbname URL FILE`, run `portcullis server restore \
                 --versions-only` so that agents take the restored policy",
                redacted(&a.database_url)
            ),
        ));
    }
    store.backup_to(file).await.or_exit(SERVER_START, format!("cannot write the backup {}", file.display()))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!("wrote {} ({size} bytes), a consistent copy of {}", file.display(), a.database_url);
    println!(
        "the secret key that opens its bundle signing keys is not in it ({}): keep a copy of that apart",
        a.secret_key_file.as_ref().map_or_else(
            || sqlite_dir(&a.database_url).unwrap_or_default().join("secret.key").display().to_string(),
            |p| p.display().to_string()
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// A database URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}://{user}:…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// `server restore --versions-only`: the database as it is (after pg_restore).
async fn continue_versions(store: &Store) -> anyhow::Result<ExitCode> {
    let jumps = store.continue_versions().await.or_exit(SERVER_START, "cannot continue the model versions")?;
    for j in &jumps {
        println!("{}: model version {} → {} (agents take the restored policy)", j.organization, j.before, j.after);
    }
    Ok(ExitCode::SUCCESS)
}

/// `server restore FILE` (SQLite): the backup opened and checked on a copy, its versions
/// continued, then moved into place; the database it replaces is kept beside it.
async fn restore(
    a: &ServerArgs,
    file: &std::path::Path,
    keys: SecretKeys,
    key_source: &str,
) -> anyhow::Result<ExitCode> {
    let Some(db) = sqlite_path(&a.database_url) else {
        return Err(fail(
            2,
            format!(
                "{} is not a SQLite file: restore PostgreSQL with pg_restore, then run `portcullis server restore \
                 --versions-only`",
                redacted(&a.database_url)
            ),
        ));
    };
    let _lock = lock_sqlite(&db, "restore")?;
    let mut head = Vec::with_capacity(16);
    let readable = std::fs::File::open(file).and_then(|f| f.take(16).read_to_end(&mut head));
    readable.or_exit(3, format!("cannot read {}", file.display()))?;
    if head != b"SQLite format 3\0" {
        return Err(fail(4, format!("{} is not a SQLite database (not a `portcullis server backup`)", file.display())));
    }
    let staged = PathBuf::from(format!("{}.restoring", db.display()));
    for stale in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", staged.display()));
    }
    {
        let mut from = std::fs::File::open(file).or_exit(3, format!("cannot read {}", file.display()))?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)
            .or_exit(SERVER_START, format!("cannot write {}", staged.display()))?;
        std::io::copy(&mut from, &mut to).or_exit(SERVER_START, format!("cannot write {}", staged.display()))?;
        to.sync_all()?;
    }
    // Opened as the server would open it: migrated to this version's schema, its signing keys
    // opened with this server's secret keys (or the restore stops here, the database untouched).
    let url = format!("sqlite://{}", staged.display());
    let store = Store::connect(&url, keys).await.map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        anyhow::Error::new(e).context(crate::exit::Exit {
            code: SERVER_START,
            message: format!("{} does not open with the secret keys from {key_source}", file.display()),
        })
    })?;
    let jumps = store.continue_versions().await.or_exit(SERVER_START, "cannot continue the model versions")?;
    store.checkpoint_and_close().await.or_exit(SERVER_START, "cannot finish the restored database")?;
    // The database it replaces (with its write-ahead log) is kept, then the backup moves in.
    let kept = if db.exists() {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
        let kept = PathBuf::from(format!("{}.before-restore-{stamp}", db.display()));
        for side in ["-wal", "-shm", ""] {
            let from = PathBuf::from(format!("{}{side}", db.display()));
            if from.exists() {
                std::fs::rename(&from, format!("{}{side}", kept.display()))
                    .or_exit(SERVER_START, format!("cannot move {} aside", from.display()))?;
            }
        }
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&staged, &db).or_exit(SERVER_START, format!("cannot move the backup to {}", db.display()))?;
    println!("restored {} into {}", file.display(), db.display());
    if let Some(kept) = kept {
        println!("the database it replaced is kept as {}", kept.display());
    }
    for j in &jumps {
        println!("{}: model version {} → {} (agents take the restored policy)", j.organization, j.before, j.after);
    }
    Ok(ExitCode::SUCCESS)
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
    let _lock = match sqlite_path(&a.database_url) {
        Some(db) => Some(lock_sqlite(&db, "start")?),
        None => None,
    };
    let listener =
        std::net::TcpListener::bind(&a.listen).or_exit(SERVER_START, format!("cannot listen on {}", a.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = portcullis_server::AppState::new(store, !a.plain_http);
    if let Some(listen) = a.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(listen)
            .await
            .or_exit(SERVER_START, format!("cannot serve metrics on {listen} (--metrics-listen)"))?;
        println!("Prometheus metrics at http://{}/metrics", metrics.local_addr()?);
        let router = portcullis_server::metrics::router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, router).await {
                tracing::error!("metrics listener: {e}");
            }
        });
    }
    // Forwarding to SIEMs and retention, in this process (several servers share the work
    // through leases).
    portcullis_server::background::start(
        state.store.clone(),
        portcullis_server::background::Background { forward_to_private: a.forward_to_private, ..Default::default() },
    );
    let app = portcullis_server::app(state);
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        // Ctrl-C, or systemd stopping the unit.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
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
