//! `tsp-job users`, `admins` and `apikey`: accounts and keys, administered from the machine
//! (docs/security.md). Passwords come from stdin only.

use std::io::BufRead;

use anyhow::{Context, bail};
use tsp_mobility::auth::{NewUser, Role, Scope};

use crate::app::App;
use crate::cli::{AdminsCommand, ApikeyCommand, OperatorRole, UsersCommand};

/// One line of stdin, without its line ending: the password.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password on stdin (pipe it in, e.g. `tsp-job users set-password 5 < file`)");
    }
    Ok(password)
}

/// `tsp-job users …`.
pub async fn users(app: &App, cmd: &UsersCommand) -> anyhow::Result<u8> {
    let auth = app.auth();
    match cmd {
        UsersCommand::Create { email, name } => {
            let id = auth
                .create_user(&NewUser {
                    email: email.clone(),
                    name: name.clone(),
                })
                .await?;
            println!("{id}");
        }
        UsersCommand::SetPassword { id } => {
            auth.set_user_password(*id, password_from_stdin()?).await?;
            println!("password set for user {id}");
        }
        UsersCommand::Suspend { id } => {
            auth.set_user_status(*id, false).await?;
            println!("user {id} suspended; their sessions are ended");
        }
        UsersCommand::Activate { id } => {
            auth.set_user_status(*id, true).await?;
            println!("user {id} active");
        }
        UsersCommand::RevokeSessions { id } => {
            let ended = auth
                .end_all_sessions(&tsp_mobility::auth::Principal::User { id: *id })
                .await?;
            println!("user {id}: {ended} live sessions ended; no older session is accepted");
        }
        UsersCommand::Delete { id } => {
            auth.delete_user(*id).await?;
            println!("user {id} deleted; their sessions are ended");
        }
    }
    Ok(0)
}

/// `tsp-job admins …`.
pub async fn admins(app: &App, cmd: &AdminsCommand) -> anyhow::Result<u8> {
    let auth = app.auth();
    match cmd {
        AdminsCommand::Create { username, role } => {
            let role = match role {
                OperatorRole::Viewer => Role::Viewer,
                OperatorRole::Operator => Role::Operator,
                OperatorRole::Admin => Role::Admin,
            };
            let id = auth
                .create_operator(username, role, password_from_stdin()?)
                .await?;
            println!("{id}");
        }
        AdminsCommand::RevokeSessions { username } => {
            let ended = auth.revoke_operator_sessions(username).await?;
            println!(
                "operator {username}: {ended} live sessions ended; no older session is accepted"
            );
        }
        AdminsCommand::Delete { username } => {
            auth.delete_operator(username).await?;
            println!("operator {username} deleted; their sessions are ended");
        }
    }
    Ok(0)
}

/// `tsp-job apikey …`.
pub async fn apikey(app: &App, cmd: &ApikeyCommand) -> anyhow::Result<u8> {
    let auth = app.auth();
    match cmd {
        ApikeyCommand::Create { name, scopes } => {
            let mut parsed = Vec::new();
            for s in scopes {
                match Scope::parse(s) {
                    Some(scope) => parsed.push(scope),
                    None => bail!(
                        "--scope: `{s}` is not one of {}",
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ),
                }
            }
            let key = auth.create_key(name, &parsed).await?;
            println!("{}", serde_json::to_string(&key)?);
        }
        ApikeyCommand::List => {
            println!(
                "{}",
                serde_json::to_string_pretty(&auth.list_keys().await?)?
            );
        }
        ApikeyCommand::Revoke { id } => {
            auth.revoke_key(*id).await?;
            println!("api key {id} revoked");
        }
    }
    Ok(0)
}
