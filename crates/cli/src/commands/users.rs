//! Users of the api: `faena users create|list|set-password|set-role|set-store|disable|enable`.

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;

use super::common::{pg, print_json, say, CliSettings, Times};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user: `faena users create ana --role seller [--store lima-centro]`.
    Create {
        username: String,
        /// admin or seller.
        #[arg(long)]
        role: String,
        /// The store (code or id) the user sells in; the main store when absent.
        #[arg(long)]
        store: Option<String>,
    },
    /// Every user with role and state.
    List,
    /// Set a new password (revokes the user's refresh tokens).
    SetPassword { username: String },
    /// Change a user's role.
    SetRole {
        username: String,
        #[arg(long)]
        role: String,
    },
    /// Move a user to another store (code or id): their next sales are that store's.
    SetStore {
        username: String,
        #[arg(long)]
        store: String,
    },
    /// Disable a user: logins and refreshes fail, refresh tokens are revoked.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
}

/// `faena users ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: UsersCommand,
    json: bool,
    times: &Times,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_shop::auth::{self, Role, Username};
    use faena_shop::stores::{self, StoreKey};
    let mut conn = pg(settings).await?;
    let store_key = |s: &str| StoreKey::parse("store", s).map_err(|e| anyhow::anyhow!("--{e}"));
    let show = |u: &auth::User| {
        serde_json::json!({
            "id": u.id, "username": u.username, "role": u.role().as_str(), "active": u.active,
            "created_at": u.created_at,
        })
    };
    let user = match command {
        UsersCommand::List => {
            let users = auth::list_users(&mut conn).await?;
            let in_store = stores::user_stores(&mut conn).await?;
            let store_of = |u: &auth::User| in_store.get(&u.id).cloned().unwrap_or_default();
            if json {
                let list: Vec<_> = users
                    .iter()
                    .map(|u| {
                        let mut v = show(u);
                        v["store"] = serde_json::json!(store_of(u));
                        v
                    })
                    .collect();
                print_json(out, &list)?;
            } else {
                writeln!(
                    out,
                    "{:<6} {:<24} {:<8} {:<8} {:<16} CREATED",
                    "ID", "USERNAME", "ROLE", "ACTIVE", "STORE"
                )?;
                for u in &users {
                    writeln!(
                        out,
                        "{:<6} {:<24} {:<8} {:<8} {:<16} {}",
                        u.id,
                        u.username,
                        u.role().as_str(),
                        if u.active { "yes" } else { "no" },
                        store_of(u),
                        times.show(Some(u.created_at))
                    )?;
                }
            }
            return Ok(exit::OK);
        }
        UsersCommand::Create {
            username,
            role,
            store,
        } => {
            let name = Username::parse(&username)?;
            let role = Role::parse(&role)?;
            // The store is checked before the password is asked for.
            let store = match &store {
                Some(s) => Some(stores::get_store(&mut conn, &store_key(s)?).await?),
                None => None,
            };
            let pw = read_password(&username)?;
            let user = auth::create_user(&mut conn, &name, pw, role).await?;
            if let Some(st) = store {
                stores::set_user_store(&mut conn, &user.username, &StoreKey::Id(st.id)).await?;
            }
            user
        }
        UsersCommand::SetStore { username, store } => {
            let st = stores::set_user_store(&mut conn, &username, &store_key(&store)?).await?;
            say(
                out,
                json,
                format!(
                    "{username} vende ahora en la tienda {} ({})",
                    st.code, st.name
                ),
                serde_json::json!({ "username": username, "store": st.code, "store_id": st.id }),
            )?;
            return Ok(exit::OK);
        }
        UsersCommand::SetPassword { username } => {
            let pw = read_password(&username)?;
            auth::update_user(&mut conn, &username, Some(pw), None, None).await?
        }
        UsersCommand::SetRole { username, role } => {
            let role = Role::parse(&role)?;
            auth::update_user(&mut conn, &username, None, Some(role), None).await?
        }
        UsersCommand::Disable { username } => {
            auth::update_user(&mut conn, &username, None, None, Some(false)).await?
        }
        UsersCommand::Enable { username } => {
            auth::update_user(&mut conn, &username, None, None, Some(true)).await?
        }
    };
    say(
        out,
        json,
        format!(
            "user {} (id {}): role {}, {}",
            user.username,
            user.id,
            user.role().as_str(),
            if user.active { "active" } else { "disabled" }
        ),
        show(&user),
    )?;
    Ok(exit::OK)
}

/// A password from a prompt (twice) on a terminal, else the first line of stdin.
fn read_password(username: &str) -> anyhow::Result<secrecy::SecretString> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {username}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
        Ok(first.into())
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let pw = line.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(
            !pw.is_empty(),
            "no password on stdin: pipe it in (`printf '%s\\n' \"$PW\" | faena users create ...`) or run in a terminal to be prompted"
        );
        Ok(pw.into())
    }
}
