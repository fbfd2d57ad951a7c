//! `portcullis server`: open the database, bind, serve; `server create-admin`.

use crate::args::{ServerArgs, ServerCommand};
use crate::exit::fail;
use portcullis_store::{Role, Store, StoreError};
use std::io::Read;
use std::process::ExitCode;

/// Exit status when the server cannot start (database, address).
const SERVER_START: u8 = 7;

pub fn run(a: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(SERVER_START, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        if let Some(dir) = a.database_url.strip_prefix("sqlite://").and_then(|p| std::path::Path::new(p).parent())
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(SERVER_START, format!("cannot create {}: {e}", dir.display())))?;
        }
        let store = Store::connect(&a.database_url)
            .await
            .map_err(|e| fail(SERVER_START, format!("{}: {e}", a.database_url)))?;
        match a.command {
            Some(ServerCommand::CreateAdmin { organization, user }) => create_admin(&store, &organization, &user).await,
            None => serve(store, &a.listen).await,
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

async fn serve(store: Store, listen: &str) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| fail(SERVER_START, format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr()?;
    let state = portcullis_server::AppState { store, secure_cookies: false };
    println!("portcullis server listening on http://{addr}/ (log in with POST /api/session)");
    axum::serve(listener, portcullis_server::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
