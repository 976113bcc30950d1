-- The transactional outbox (kernel): a job written here inside a transaction exists in Redis once the
-- transaction commits (a relay in the worker and the api moves it), and never if it rolls back.
-- The task id is chosen at insert, so the caller can store it next to its own rows.
CREATE TABLE faena_outbox (
    seq BIGSERIAL PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL,
    run_at TIMESTAMPTZ,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    idempotency_key TEXT,
    owner TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when the relay cannot enqueue the row (its kind unknown to this version): an operator looks.
    last_error TEXT
);
