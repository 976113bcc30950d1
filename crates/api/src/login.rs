//! The password check behind every sign-in (`POST /api/auth/token` and the console's form at
//! `/console/login`), with the failed-login limits of both: the same users, the same counters.
//!
//! Every attempt first reserves one failure under its user and its address
//! ([`Broker::reserve_events`](faena_broker::Broker::reserve_events), atomic); only then is the
//! password checked. A wrong password keeps the reservation; a right one forgets the user's
//! failures and gives the address's back; an attempt that fails for another reason (the database
//! is down) gives both back. So of N attempts at once only as many as the limit leaves check a
//! password, and an attempt refused by a limit never runs argon2. Policy: `docs/decisions.md`.

use std::net::IpAddr;
use std::time::Duration;

use faena_broker::{Admission, EventLimit};
use faena_core::db::PooledConnection;
use faena_shop::auth::{self, AuthError, User};
use secrecy::SecretString;

use crate::error::ApiError;
use crate::AppState;

/// How long failed logins are remembered (from the first failure of a window).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Checks a username and password under the failed-login limits; on success, the user and the
/// connection it was read with. 429 (`TooManyRequests`) when a limit refuses the attempt, 401
/// for a wrong password or a disabled user.
pub async fn check_password(
    state: &AppState,
    username: &str,
    password: SecretString,
    peer: Option<IpAddr>,
) -> Result<(PooledConnection, User), ApiError> {
    let user_key = format!("login:user:{}", username.to_lowercase());
    let addr_key = format!(
        "login:addr:{}",
        peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
    );
    let limits = [
        EventLimit {
            name: &user_key,
            max: u64::from(state.login_max_failures),
        },
        EventLimit {
            name: &addr_key,
            max: u64::from(state.login_max_failures_per_address),
        },
    ];
    if let Admission::Refused { index, retry_after } =
        state.broker.reserve_events(&limits, FAILURE_WINDOW).await?
    {
        let whom = if index == 0 {
            "this user"
        } else {
            "this address (all its users together)"
        };
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        tracing::info!(user = %username, limit = whom, "login refused by its limit");
        return Err(ApiError::TooManyRequests {
            message: format!(
                "too many failed logins for {whom}: wait {secs} seconds and try again"
            ),
            retry_after: secs.max(1),
        });
    }
    let checked = async {
        let mut conn = state.db_conn().await?;
        let user = auth::authenticate(&mut conn, username, password).await?;
        Ok::<_, ApiError>((conn, user))
    }
    .await;
    match checked {
        Ok((conn, user)) => {
            state.broker.clear_events(&user_key).await?;
            state.broker.give_back_event(&addr_key).await?;
            tracing::info!(user = %user.username, role = user.role().as_str(), "login");
            Ok((conn, user))
        }
        Err(ApiError::Unauthorized(e @ (AuthError::BadCredentials | AuthError::Disabled))) => {
            tracing::warn!(user = %username, "failed login");
            Err(ApiError::Unauthorized(e))
        }
        Err(e) => {
            // Not a failure of the user's: the attempt does not count.
            for name in [&user_key, &addr_key] {
                if let Err(b) = state.broker.give_back_event(name).await {
                    tracing::warn!(error = %b, limit = %name, "could not give back a login reservation");
                }
            }
            Err(e)
        }
    }
}
