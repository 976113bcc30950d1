-- Sign-in sessions of the console at /console (issue 18). The cookie carries a random token;
-- only its SHA-256 is stored, like refresh tokens, so a stolen table gives no usable session.
-- Each session has its own CSRF token, sent back in every form and checked in constant time.
-- Logout deletes the row; a disabled or deleted user's sessions stop working at once (the
-- lookup joins users).
CREATE TABLE console_sessions (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
