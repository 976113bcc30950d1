-- Stores (issue 17): each store is a SUNAT establishment with its own series; sellers belong to
-- one, and each sale records the store it was made in.
--
-- The migration creates the main store (establishment 0000, SUNAT's domicilio fiscal) and moves
-- today's data into it unchanged: every sale and every user belong to it. Its boleta and factura
-- series are the series of the newest existing sale of each type, so a deployment that sold on
-- other series (FAENA_BOLETA_SERIES / FAENA_FACTURA_SERIES) keeps selling on them; without sales,
-- B001 and F001 (the settings' defaults), which the api replaces from the settings at start while
-- the main store has issued nothing of that type (docs/decisions.md).
CREATE TABLE stores (
    id BIGSERIAL PRIMARY KEY,
    -- Short name used in URLs and the CLI (`lima-centro`).
    code TEXT NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9-]{1,31}$'),
    name TEXT NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    address TEXT NOT NULL DEFAULT '' CHECK (length(address) <= 200),
    -- As registered with SUNAT (código de establecimiento anexo); 0000 is the main one.
    establishment_code TEXT NOT NULL UNIQUE CHECK (establishment_code ~ '^[0-9]{4}$'),
    active BOOLEAN NOT NULL DEFAULT TRUE,
    boleta_series TEXT NOT NULL UNIQUE CHECK (boleta_series ~ '^B[0-9A-Z]{3}$'),
    factura_series TEXT NOT NULL UNIQUE CHECK (factura_series ~ '^F[0-9A-Z]{3}$'),
    -- Credit and debit notes on this store's boletas / facturas.
    boleta_note_series TEXT NOT NULL UNIQUE DEFAULT 'BC01' CHECK (boleta_note_series ~ '^B[0-9A-Z]{3}$'),
    factura_note_series TEXT NOT NULL UNIQUE DEFAULT 'FC01' CHECK (factura_note_series ~ '^F[0-9A-Z]{3}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Across stores the code checks it (stores::write locks the table); within a row, here.
    CONSTRAINT stores_boleta_series_distinct CHECK (boleta_series <> boleta_note_series),
    CONSTRAINT stores_factura_series_distinct CHECK (factura_series <> factura_note_series)
);

DO $$
DECLARE
    main BIGINT;
BEGIN
    INSERT INTO stores (code, name, establishment_code, boleta_series, factura_series)
    VALUES (
        'principal',
        'Tienda principal',
        '0000',
        COALESCE((SELECT series FROM sales WHERE doc_type = '03' ORDER BY id DESC LIMIT 1), 'B001'),
        COALESCE((SELECT series FROM sales WHERE doc_type = '01' ORDER BY id DESC LIMIT 1), 'F001')
    )
    RETURNING id INTO main;
    -- A constant default: PostgreSQL adds the column without rewriting the table, every existing
    -- row reads the main store, and a process of the previous version (a rolling deploy) that
    -- inserts a sale or a user without the column still lands in the main store.
    EXECUTE format('ALTER TABLE sales ADD COLUMN store_id BIGINT NOT NULL DEFAULT %s REFERENCES stores (id)', main);
    EXECUTE format('ALTER TABLE users ADD COLUMN store_id BIGINT NOT NULL DEFAULT %s REFERENCES stores (id)', main);
END $$;

CREATE INDEX sales_store_issue_date ON sales (store_id, issue_date);
CREATE INDEX users_store ON users (store_id);

-- Insights of one store (`store_insights`) and the all-stores summary of the hourly fan-out
-- (`insights_summary`).
ALTER TABLE insights ADD COLUMN store_id BIGINT REFERENCES stores (id) ON DELETE CASCADE;
ALTER TABLE insights DROP CONSTRAINT insights_kind_check;
ALTER TABLE insights ADD CONSTRAINT insights_kind_check
    CHECK (kind IN ('low_stock', 'out_of_stock', 'sales_summary', 'sunat_deadline',
                    'store_insights', 'insights_summary'));
ALTER TABLE insights ADD CONSTRAINT insights_store_insights_has_store
    CHECK ((kind = 'store_insights') = (store_id IS NOT NULL));
-- One insight per kind and period for all stores, and one per kind, store and period.
DROP INDEX insights_one_per_period;
CREATE UNIQUE INDEX insights_one_per_period ON insights (kind, period)
    WHERE period IS NOT NULL AND store_id IS NULL;
CREATE UNIQUE INDEX insights_one_per_store_period ON insights (kind, store_id, period)
    WHERE period IS NOT NULL AND store_id IS NOT NULL;
CREATE INDEX insights_store ON insights (store_id, opened_at DESC) WHERE store_id IS NOT NULL;

-- Seed 004's schedules: the hourly fan-out over the active stores, out-of-stock every 15
-- minutes, and the weekly sales summary (Mondays 09:00, Lima). Names a deployment already
-- used are left as they are.
INSERT INTO periodic_tasks (name, kind, args, cron, description) VALUES
    ('generate-insights', 'generate_insights', '{}', '0 0 * * * *',
     'Hourly: each active store''s insights in parallel (a group), then an all-stores summary naming the stores that failed'),
    ('out-of-stock-alerts', 'out_of_stock_alerts', '{}', '0 */15 * * * *',
     'Every 15 minutes: products that ran out (and those that came back)'),
    ('weekly-sales-summary', 'sales_summary', '{"hours": 168}', '0 0 9 * * Mon',
     'Mondays at 09:00: sales summary of the last 7 days, per store and for all')
ON CONFLICT (name) DO NOTHING;
