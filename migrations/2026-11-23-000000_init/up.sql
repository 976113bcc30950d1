-- The first migration: a table of settings that belong to the deployment rather than the environment.
-- Later migrations add the domain tables (periodic tasks, products, reservations, sales).
CREATE TABLE faena_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO faena_meta (key, value) VALUES ('schema_origin', 'faena');
