-- Periodic schedules, edited at run time (like django-celery-beat's DatabaseScheduler).
-- Exactly one of `cron` (6 fields with seconds, stored normalised) and `interval_secs` is set.
CREATE TABLE periodic_tasks (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
    kind TEXT NOT NULL,
    args JSONB NOT NULL DEFAULT '{}'::jsonb,
    queue TEXT,
    cron TEXT,
    interval_secs BIGINT CHECK (interval_secs > 0),
    timezone TEXT NOT NULL DEFAULT 'America/Lima',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    one_off BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at TIMESTAMPTZ,
    last_run_at TIMESTAMPTZ,
    total_run_count BIGINT NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT periodic_tasks_one_schedule CHECK ((cron IS NULL) <> (interval_secs IS NULL))
);

INSERT INTO periodic_tasks (name, kind, cron, description) VALUES
    ('release-expired-reservations', 'release_expired_reservations', '0 * * * * *', 'Every minute: release checkout reservations whose 15 minutes passed'),
    ('cleanup-expired-tokens', 'cleanup_expired_tokens', '0 0 * * * *', 'Hourly: delete expired and revoked refresh tokens'),
    ('retry-failed-sunat-sends', 'retry_failed_sunat_sends', '0 */30 * * * *', 'Every 30 minutes: re-send sales in ERROR'),
    ('sunat-daily-report', 'sunat_daily_report', '0 0 23 * * *', 'Daily at 23:00: report of SUNAT sends'),
    ('cleanup-old-files', 'cleanup_old_files', '0 0 2 * * Sun', 'Sundays at 02:00: delete old XML, CDR, QR and PDF files'),
    ('stock-alerts', 'stock_alerts', '0 */30 * * * *', 'Every 30 minutes: products at or below their threshold'),
    ('sales-summary', 'sales_summary', '0 0 20 * * *', 'Daily at 20:00: sales summary of the last 24 hours');
