//! Sign-in sessions of the console (`/console`): a random token in an HttpOnly cookie, stored as
//! its SHA-256 with the user and a CSRF token of its own. A session is looked up on every request
//! joined to its user, so logging out, disabling the user or deleting it ends it at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::RngCore;

use crate::auth::{hex, token_hash, AuthError, Role, User};
use crate::schema::{console_sessions, users};

/// How long a console session lasts from sign-in (a working day and then some).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// A new session: the cookie's token (returned once, never stored) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A live session with its user, as the console reads it on every request.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// 32 random bytes in hex: a session token, a CSRF token, or the sign-in form's token.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

/// Opens a session for a user who just signed in.
pub async fn open(
    conn: &mut AsyncPgConnection,
    user: &User,
    ttl: Duration,
) -> Result<NewSession, AuthError> {
    let token = random_hex();
    let csrf_token = random_hex();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::hours(12));
    diesel::insert_into(console_sessions::table)
        .values((
            console_sessions::token_hash.eq(token_hash(&token)),
            console_sessions::user_id.eq(user.id),
            console_sessions::csrf_token.eq(&csrf_token),
            console_sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(NewSession {
        token,
        csrf_token,
        expires_at,
    })
}

/// The live session of a cookie token: unknown, expired, or of a disabled user is `None`.
pub async fn find(conn: &mut AsyncPgConnection, token: &str) -> Result<Option<Session>, AuthError> {
    let row: Option<(i64, i64, String, DateTime<Utc>, User)> = console_sessions::table
        .inner_join(users::table)
        .filter(console_sessions::token_hash.eq(token_hash(token)))
        .filter(console_sessions::expires_at.gt(diesel::dsl::now))
        .filter(users::active.eq(true))
        .select((
            console_sessions::id,
            console_sessions::user_id,
            console_sessions::csrf_token,
            console_sessions::expires_at,
            User::as_select(),
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(
        row.map(|(id, user_id, csrf_token, expires_at, user)| Session {
            id,
            user_id,
            role: user.role(),
            username: user.username,
            csrf_token,
            expires_at,
        }),
    )
}

/// Ends a session (logout). Ending an unknown session is not an error.
pub async fn close(conn: &mut AsyncPgConnection, id: i64) -> Result<bool, AuthError> {
    let n = diesel::delete(console_sessions::table.find(id))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Deletes expired sessions; returns how many (the `cleanup_expired_tokens` job calls it).
pub async fn cleanup_expired(conn: &mut AsyncPgConnection) -> Result<usize, AuthError> {
    Ok(diesel::delete(
        console_sessions::table.filter(console_sessions::expires_at.le(diesel::dsl::now)),
    )
    .execute(conn)
    .await?)
}
