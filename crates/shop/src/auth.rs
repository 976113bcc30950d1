//! Users, passwords and tokens: argon2id password hashes, short-lived HS256 access JWTs and
//! rotating refresh tokens stored hashed. The api maps [`AuthError`] to 401/403/429.

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use faena_core::db::QueryError;
use faena_core::settings::{AuthSettings, SettingsError};

use crate::schema::{refresh_tokens, users};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: products, tasks, queues, schedules, every sale, the dashboard.
    Admin,
    /// Checkout, their own sales, reservations and tasks.
    Seller,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Seller => "seller",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AuthError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "seller" => Ok(Self::Seller),
            other => Err(AuthError::Invalid {
                field: "role",
                message: format!("unknown role {other:?}: expected admin or seller"),
            }),
        }
    }
}

/// A username: 3 to 64 characters of letters, digits, `.`, `_`, `-` or `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let ok = (3..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(AuthError::Invalid {
                field: "username",
                message: "3 to 64 characters of letters, digits, `.`, `_`, `-` or `@`".into(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// The longest password accepted (argon2 time grows with it).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A user as the rest of the code sees it (never with the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    #[diesel(column_name = role)]
    #[serde(rename = "role")]
    pub role_raw: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The user's role; an unknown value in the table (impossible with its CHECK) reads as seller.
    pub fn role(&self) -> Role {
        Role::parse(&self.role_raw).unwrap_or(Role::Seller)
    }
}

/// An authentication or user-management failure. Each variant has a stable [`AuthError::code`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("wrong username or password")]
    BadCredentials,
    #[error("the user is disabled")]
    Disabled,
    #[error("a user named `{0}` already exists")]
    Exists(String),
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    #[error("the token is missing: send `Authorization: Bearer <access token>` (POST /api/auth/token gives one)")]
    MissingToken,
    #[error("the access token is invalid: {0}")]
    InvalidToken(String),
    #[error("the access token expired: get a new one with POST /api/auth/refresh")]
    ExpiredToken,
    #[error(
        "the refresh token is unknown, expired or revoked: log in again with POST /api/auth/token"
    )]
    InvalidRefresh,
    /// The database refused the data, or could not answer; the text is ours, never PostgreSQL's.
    #[error(transparent)]
    Db(#[from] QueryError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_request",
            Self::BadCredentials => "bad_credentials",
            Self::Disabled => "user_disabled",
            Self::Exists(_) => "user_exists",
            Self::NoSuchUser(_) => "user_not_found",
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) => "invalid_token",
            Self::ExpiredToken => "token_expired",
            Self::InvalidRefresh => "invalid_refresh_token",
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_unavailable",
            Self::Hash(_) => "internal",
        }
    }
}

impl From<diesel::result::Error> for AuthError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn check_password(password: &str) -> Result<(), AuthError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(AuthError::Invalid {
            field: "password",
            message: format!(
                "a password has {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters (got {n})"
            ),
        });
    }
    Ok(())
}

/// Hashes a password with argon2id (on a blocking thread: it takes tens of milliseconds).
pub async fn hash_password(password: SecretString) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| AuthError::Hash(e.to_string()))?
}

async fn verify_password(password: SecretString, hash: String) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| AuthError::Hash(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| AuthError::Hash(e.to_string()))?
}

/// A hash of a random password, verified when the username is unknown so that a login takes
/// the same time whether or not the user exists.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let mut pw = [0u8; 16];
    rand::rng().fill_bytes(&mut pw);
    Argon2::default()
        .hash_password(&pw, &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// Creates a user.
pub async fn create_user(
    conn: &mut AsyncPgConnection,
    username: &Username,
    password: SecretString,
    role: Role,
) -> Result<User, AuthError> {
    check_password(password.expose_secret())?;
    let hash = hash_password(password).await?;
    let res = diesel::insert_into(users::table)
        .values((
            users::username.eq(username.as_str()),
            users::password_hash.eq(&hash),
            users::role.eq(role.as_str()),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await;
    match res {
        Ok(u) => Ok(u),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(AuthError::Exists(username.as_str().to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Changes a user's password, role or active flag. Disabling a user or changing the password
/// revokes their refresh tokens.
pub async fn update_user(
    conn: &mut AsyncPgConnection,
    username: &str,
    password: Option<SecretString>,
    role: Option<Role>,
    active: Option<bool>,
) -> Result<User, AuthError> {
    let hash = match password {
        Some(p) => {
            check_password(p.expose_secret())?;
            Some(hash_password(p).await?)
        }
        None => None,
    };
    let user: User = users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| AuthError::NoSuchUser(username.to_owned()))?;
    let revoke = hash.is_some() || active == Some(false);
    diesel::update(users::table.find(user.id))
        .set(users::updated_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    if let Some(h) = hash {
        diesel::update(users::table.find(user.id))
            .set(users::password_hash.eq(h))
            .execute(conn)
            .await?;
    }
    if let Some(r) = role {
        diesel::update(users::table.find(user.id))
            .set(users::role.eq(r.as_str()))
            .execute(conn)
            .await?;
    }
    if let Some(a) = active {
        diesel::update(users::table.find(user.id))
            .set(users::active.eq(a))
            .execute(conn)
            .await?;
    }
    if revoke {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::user_id.eq(user.id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    }
    Ok(users::table
        .find(user.id)
        .select(User::as_select())
        .first(conn)
        .await?)
}

/// Every user, by name.
pub async fn list_users(conn: &mut AsyncPgConnection) -> Result<Vec<User>, AuthError> {
    Ok(users::table
        .order(users::username.asc())
        .select(User::as_select())
        .load(conn)
        .await?)
}

/// Checks a username and password. Unknown users and wrong passwords answer the same error in
/// about the same time; a disabled user with the right password gets [`AuthError::Disabled`].
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    username: &str,
    password: SecretString,
) -> Result<User, AuthError> {
    if password.expose_secret().len() > MAX_PASSWORD_LEN {
        return Err(AuthError::BadCredentials);
    }
    let row: Option<(User, String)> = users::table
        .filter(users::username.eq(username))
        .select((User::as_select(), users::password_hash))
        .first(conn)
        .await
        .optional()?;
    match row {
        None => {
            verify_password(password, DUMMY_HASH.clone()).await?;
            Err(AuthError::BadCredentials)
        }
        Some((user, hash)) => {
            if !verify_password(password, hash).await? {
                Err(AuthError::BadCredentials)
            } else if !user.active {
                Err(AuthError::Disabled)
            } else {
                Ok(user)
            }
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The username.
    pub name: String,
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

impl Claims {
    pub fn user_id(&self) -> &str {
        &self.sub
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Signs and checks access tokens (HS256 with `FAENA_JWT_SECRET`).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    /// How long an access token lives.
    pub access_ttl: Duration,
    /// How long a refresh token lives.
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("secret", &"[redacted]")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish()
    }
}

/// The shortest JWT secret accepted outside dev mode.
pub const MIN_SECRET_BYTES: usize = 32;

impl TokenKeys {
    pub fn new(secret: &SecretString, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        Self {
            encoding: jsonwebtoken::EncodingKey::from_secret(bytes),
            decoding: jsonwebtoken::DecodingKey::from_secret(bytes),
            access_ttl,
            refresh_ttl,
        }
    }

    /// A random secret, for dev mode when `FAENA_JWT_SECRET` is unset (tokens die with the process).
    pub fn random_secret() -> SecretString {
        let mut b = [0u8; 48];
        rand::rng().fill_bytes(&mut b);
        SecretString::from(hex(&b))
    }

    /// An access token for a user, and its claims.
    pub fn issue_access(&self, user: &User) -> Result<(String, Claims), AuthError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.username.clone(),
            role: user.role(),
            iat: now,
            exp: now + i64::try_from(self.access_ttl.as_secs()).unwrap_or(900),
        };
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.encoding)
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        Ok((token, claims))
    }

    /// Checks an access token's signature and expiry (no leeway).
    pub fn verify_access(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::ExpiredToken,
                _ => AuthError::InvalidToken(e.to_string()),
            })
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// id, user id, expiry and revocation time of a stored refresh token.
type TokenRow = (i64, i64, DateTime<Utc>, Option<DateTime<Utc>>);

/// A new random refresh token for a user, stored hashed; the token itself is returned once.
pub async fn issue_refresh(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    ttl: Duration,
) -> Result<String, AuthError> {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    let token = hex(&b);
    let expires =
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(30));
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::token_hash.eq(token_hash(&token)),
            refresh_tokens::expires_at.eq(expires),
        ))
        .execute(conn)
        .await?;
    Ok(token)
}

/// Exchanges a refresh token for a new one (the old one is revoked in the same transaction) and
/// returns the user. A revoked token presented again revokes every token of its user: it was
/// stolen or replayed.
pub async fn rotate_refresh(
    conn: &mut AsyncPgConnection,
    token: &str,
    ttl: Duration,
) -> Result<(User, String), AuthError> {
    let hash = token_hash(token);
    let outcome = conn
        .transaction::<_, AuthError, _>(async move |conn| {
            let row: Option<TokenRow> = refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(&hash))
                .select((
                    refresh_tokens::id,
                    refresh_tokens::user_id,
                    refresh_tokens::expires_at,
                    refresh_tokens::revoked_at,
                ))
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let Some((id, user_id, expires_at, revoked_at)) = row else {
                return Ok(None);
            };
            if revoked_at.is_some() {
                diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::user_id.eq(user_id))
                        .filter(refresh_tokens::revoked_at.is_null()),
                )
                .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
                .execute(conn)
                .await?;
                return Ok(None);
            }
            if expires_at <= Utc::now() {
                return Ok(None);
            }
            diesel::update(refresh_tokens::table.find(id))
                .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
                .execute(conn)
                .await?;
            let user: User = users::table
                .find(user_id)
                .select(User::as_select())
                .first(conn)
                .await?;
            if !user.active {
                return Err(AuthError::Disabled);
            }
            let new = issue_refresh(conn, user_id, ttl).await?;
            Ok(Some((user, new)))
        })
        .await?;
    outcome.ok_or(AuthError::InvalidRefresh)
}

/// Revokes a refresh token (logout). Unknown tokens are not an error: logout is idempotent.
pub async fn revoke_refresh(conn: &mut AsyncPgConnection, token: &str) -> Result<bool, AuthError> {
    let n = diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash(token)))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Deletes refresh tokens that expired or were revoked; returns how many.
pub async fn cleanup_expired_tokens(conn: &mut AsyncPgConnection) -> Result<usize, AuthError> {
    Ok(diesel::delete(
        refresh_tokens::table.filter(
            refresh_tokens::expires_at
                .le(diesel::dsl::now)
                .or(refresh_tokens::revoked_at.is_not_null()),
        ),
    )
    .execute(conn)
    .await?)
}

/// The token keys, or an error naming `FAENA_JWT_SECRET` when it is missing or short outside
/// dev mode. In dev mode a missing secret becomes a random one (tokens die with the process).
pub fn token_keys(settings: &AuthSettings) -> Result<TokenKeys, SettingsError> {
    let expected = || {
        format!(
            "at least {} bytes, e.g. `openssl rand -hex 32`; or set FAENA_ENV=dev for a random one",
            MIN_SECRET_BYTES
        )
    };
    let secret = match &settings.jwt_secret {
        Some(s) if s.expose_secret().len() >= MIN_SECRET_BYTES => s.clone(),
        Some(s) if !settings.dev_mode => {
            return Err(SettingsError::Invalid {
                name: "FAENA_JWT_SECRET",
                value: format!("<{} bytes, hidden>", s.expose_secret().len()),
                expected: expected(),
            })
        }
        None if !settings.dev_mode => {
            return Err(SettingsError::Missing {
                name: "FAENA_JWT_SECRET",
                expected: "the api signs access tokens with it: at least 32 random bytes, e.g. `openssl rand -hex 32` (or FAENA_ENV=dev for a random one)",
            })
        }
        _ => TokenKeys::random_secret(),
    };
    Ok(TokenKeys::new(
        &secret,
        settings.access_ttl,
        settings.refresh_ttl,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: &str) -> User {
        User {
            id: 7,
            username: "ana".into(),
            role_raw: role.into(),
            active: true,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn access_tokens_round_trip_and_reject_other_secrets() {
        let keys = TokenKeys::new(
            &SecretString::from("a".repeat(32)),
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        let (token, claims) = keys.issue_access(&user("seller")).unwrap();
        assert_eq!(keys.verify_access(&token).unwrap(), claims);
        assert_eq!(claims.role, Role::Seller);
        let other = TokenKeys::new(
            &SecretString::from("b".repeat(32)),
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        assert!(matches!(
            other.verify_access(&token),
            Err(AuthError::InvalidToken(_))
        ));
        assert!(matches!(
            keys.verify_access("not.a.jwt"),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn expired_tokens_are_told_apart() {
        let keys = TokenKeys::new(
            &SecretString::from("a".repeat(32)),
            Duration::from_secs(0),
            Duration::from_secs(600),
        );
        let mut u = user("admin");
        u.id = 1;
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: "1".into(),
            name: "x".into(),
            role: Role::Admin,
            iat: now - 100,
            exp: now - 10,
        };
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &keys.encoding)
            .unwrap();
        assert!(matches!(
            keys.verify_access(&token),
            Err(AuthError::ExpiredToken)
        ));
    }

    #[test]
    fn usernames_and_roles_parse() {
        assert!(Username::parse("ana.perez").is_ok());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("ab").is_err());
        assert_eq!(Role::parse("ADMIN").unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
    }
}
