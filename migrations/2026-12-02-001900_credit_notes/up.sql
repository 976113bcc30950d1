-- Credit notes (notas de crédito electrónicas, type 07) of accepted sales (issue 15).
--
-- A note has its own series (FAENA_FACTURA_NOTE_SERIES, FAENA_BOLETA_NOTE_SERIES) and takes its
-- correlative from series_counters in the transaction that inserts it, like a sale. Its SUNAT
-- state follows a sale's (PENDING -> SENDING -> ACCEPTED | REJECTED | ERROR | CONFLICT); only
-- the attempt that moved it to SENDING (sunat_send_marker) moves it out. Each credited line
-- points at the sale line it credits, with the units and amounts it took; the units and amount
-- left of a sale are the sale's less those of its notes that SUNAT did not reject. No existing
-- row changes.
CREATE TABLE credit_notes (
    id BIGSERIAL PRIMARY KEY,
    sale_id BIGINT NOT NULL REFERENCES sales (id),
    created_by TEXT NOT NULL,
    series TEXT NOT NULL,
    correlative BIGINT NOT NULL CHECK (correlative BETWEEN 1 AND 99999999),
    issue_date DATE NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Catálogo 09.
    reason_code TEXT NOT NULL CHECK (reason_code IN ('01', '02', '03', '04', '05', '06', '07',
                                                     '08', '09', '10', '11', '12', '13')),
    description TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    currency TEXT NOT NULL DEFAULT 'PEN',
    subtotal NUMERIC(14, 2) NOT NULL,
    igv NUMERIC(14, 2) NOT NULL,
    icbper NUMERIC(14, 2) NOT NULL DEFAULT 0,
    total NUMERIC(14, 2) NOT NULL CHECK (total > 0),
    sunat_status TEXT NOT NULL DEFAULT 'PENDING'
        CHECK (sunat_status IN ('PENDING', 'SENDING', 'ACCEPTED', 'REJECTED', 'ERROR', 'CONFLICT')),
    sunat_outcome TEXT,
    sunat_code TEXT,
    sunat_description TEXT,
    sunat_notes JSONB NOT NULL DEFAULT '[]',
    sunat_attempts INT NOT NULL DEFAULT 0,
    sunat_sent_at TIMESTAMPTZ,
    accepted_at TIMESTAMPTZ,
    -- The attempt (task_id:token) that moved the note to SENDING.
    sunat_send_marker TEXT,
    -- SHA-256 of the signed XML of a send whose outcome was unknown or in process: a later 1033
    -- or 1032 on those very bytes speaks of that send.
    unsure_sha256 TEXT,
    digest_value TEXT,
    xml_path TEXT,
    cdr_path TEXT,
    pdf_path TEXT,
    qr_path TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (series, correlative)
);
CREATE INDEX credit_notes_sale ON credit_notes (sale_id);
CREATE INDEX credit_notes_issue_date ON credit_notes (issue_date);

CREATE TABLE credit_note_items (
    id BIGSERIAL PRIMARY KEY,
    credit_note_id BIGINT NOT NULL REFERENCES credit_notes (id) ON DELETE CASCADE,
    sale_item_id BIGINT NOT NULL REFERENCES sale_items (id),
    product_id BIGINT REFERENCES products (id),
    -- The units credited (NUMERIC, so decimal quantities need no migration of this table), and
    -- the units of the sale line earlier notes had credited when this one was made: its amounts
    -- are the line's at (before + quantity) less the line's at before, so the XML is rebuilt from
    -- these two alone whatever happens to the other notes later.
    quantity NUMERIC(12, 3) NOT NULL CHECK (quantity > 0),
    credited_before NUMERIC(12, 3) NOT NULL DEFAULT 0 CHECK (credited_before >= 0),
    -- The line's credited value, IGV, ICBPER and what it gives back (value + IGV + ICBPER).
    value NUMERIC(14, 2) NOT NULL,
    igv NUMERIC(14, 2) NOT NULL,
    icbper_amount NUMERIC(14, 2) NOT NULL DEFAULT 0,
    line_total NUMERIC(14, 2) NOT NULL
);
CREATE INDEX credit_note_items_note ON credit_note_items (credit_note_id);
CREATE INDEX credit_note_items_sale_item ON credit_note_items (sale_item_id);
