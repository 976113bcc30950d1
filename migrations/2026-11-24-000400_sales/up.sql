-- Sales and their SUNAT electronic receipts (issue 6).
--
-- A sale's correlative comes from series_counters in the same transaction that inserts the sale,
-- so a rolled-back sale gives its number back (no gaps) and the counter's row lock serializes
-- concurrent sales of one series (no duplicates); UNIQUE (series, correlative) backs it.
CREATE TABLE series_counters (
    series TEXT PRIMARY KEY,
    last_correlative BIGINT NOT NULL CHECK (last_correlative BETWEEN 0 AND 99999999)
);

CREATE TABLE sales (
    id BIGSERIAL PRIMARY KEY,
    seller_id TEXT NOT NULL,
    reservation_id BIGINT UNIQUE REFERENCES reservations (id),
    doc_type TEXT NOT NULL CHECK (doc_type IN ('01', '03')),
    series TEXT NOT NULL,
    correlative BIGINT NOT NULL CHECK (correlative BETWEEN 1 AND 99999999),
    issue_date DATE NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    customer_doc_type TEXT NOT NULL,
    customer_doc_number TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    currency TEXT NOT NULL DEFAULT 'PEN',
    subtotal NUMERIC(14, 2) NOT NULL,
    igv NUMERIC(14, 2) NOT NULL,
    total NUMERIC(14, 2) NOT NULL,
    is_cancelled BOOLEAN NOT NULL DEFAULT FALSE,
    cancelled_at TIMESTAMPTZ,
    sunat_status TEXT NOT NULL DEFAULT 'PENDING'
        CHECK (sunat_status IN ('PENDING', 'SENDING', 'ACCEPTED', 'REJECTED', 'ERROR')),
    -- The class of the last answer (faena_sunat::Outcome::name): accepted, observed, rejected,
    -- retryable, unknown, in_process, already_registered, config_error, document_error, needs_summary.
    sunat_outcome TEXT,
    sunat_code TEXT,
    sunat_description TEXT,
    sunat_notes JSONB NOT NULL DEFAULT '[]',
    sunat_attempts INT NOT NULL DEFAULT 0,
    sunat_sent_at TIMESTAMPTZ,
    accepted_at TIMESTAMPTZ,
    digest_value TEXT,
    xml_path TEXT,
    cdr_path TEXT,
    pdf_path TEXT,
    qr_path TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (series, correlative)
);
CREATE INDEX sales_retry ON sales (sunat_status, sunat_sent_at) WHERE sunat_status = 'ERROR';
CREATE INDEX sales_issue_date ON sales (issue_date);
CREATE INDEX sales_seller ON sales (seller_id);

CREATE TABLE sale_items (
    id BIGSERIAL PRIMARY KEY,
    sale_id BIGINT NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
    product_id BIGINT REFERENCES products (id),
    sku TEXT NOT NULL,
    description TEXT NOT NULL,
    quantity INT NOT NULL CHECK (quantity > 0),
    unit_price NUMERIC(12, 2) NOT NULL CHECK (unit_price > 0),
    line_total NUMERIC(14, 2) NOT NULL
);
CREATE INDEX sale_items_sale ON sale_items (sale_id);

CREATE TABLE sunat_submissions (
    id BIGSERIAL PRIMARY KEY,
    sale_id BIGINT NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
    attempt INT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    duration_ms INT NOT NULL,
    outcome TEXT NOT NULL,
    code TEXT,
    description TEXT,
    http_status INT,
    task_id TEXT
);
CREATE INDEX sunat_submissions_sale ON sunat_submissions (sale_id);
