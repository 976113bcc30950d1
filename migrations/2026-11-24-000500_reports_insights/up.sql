-- Reports and insights (issue 10): the daily SUNAT report, the sales summary and stock alerts.
--
-- A report is one row per (kind, period): generating it again for the same period replaces it.
CREATE TABLE reports (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('sunat_daily')),
    -- The period the report covers, e.g. the Lima date 2026-11-24.
    period TEXT NOT NULL,
    data JSONB NOT NULL,
    -- The CSV copy, relative to the files directory (e.g. reports/sunat-daily-2026-11-24.csv).
    csv_path TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (kind, period)
);

-- Alerts (low_stock, out_of_stock: one per product, open while the condition lasts) and summaries
-- (sales_summary: one per period, the newest open, older ones closed).
CREATE TABLE insights (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('low_stock', 'out_of_stock', 'sales_summary')),
    product_id BIGINT REFERENCES products (id) ON DELETE CASCADE,
    -- The period of a summary (e.g. 2026-11-24T01:00:00Z/24h); NULL for alerts.
    period TEXT,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    data JSONB NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT insights_alert_has_product CHECK ((kind = 'sales_summary') = (product_id IS NULL)),
    CONSTRAINT insights_closed_at CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
-- At most one open alert per product, whatever its kind, even when two workers run
-- stock_alerts at once: inserts use ON CONFLICT on this index.
CREATE UNIQUE INDEX insights_one_open_per_product ON insights (product_id)
    WHERE status = 'open' AND product_id IS NOT NULL;
-- One summary per period: a re-run replaces it.
CREATE UNIQUE INDEX insights_one_per_period ON insights (kind, period) WHERE period IS NOT NULL;
CREATE INDEX insights_status_kind ON insights (status, kind, opened_at DESC);
