-- Issue 15 (back office): cancelling a sale, and the Resumen Diario (RC) and Comunicación de
-- Baja (RA) that tell SUNAT about it, with their tickets. Existing rows are not changed.

-- VOIDED: SUNAT voided the receipt (an accepted Comunicación de Baja, or an RC line with status 3).
ALTER TABLE sales DROP CONSTRAINT sales_sunat_status_check;
ALTER TABLE sales ADD CONSTRAINT sales_sunat_status_check CHECK (
    sunat_status IN ('PENDING', 'SENDING', 'ACCEPTED', 'REJECTED', 'ERROR', 'CONFLICT', 'VOIDED'));

-- Why, by whom and how a sale was cancelled. `sales.is_cancelled` and `sales.cancelled_at` say
-- that it was (set in the same transaction); the rest lives here because `sales` has diesel's 32
-- columns. `sunat_action`: NONE (SUNAT holds nothing to void), BAJA (a line of a Comunicación de
-- Baja), RESUMEN (a line with status 3 of a Resumen Diario). `sunat_state`: NONE with action NONE;
-- QUEUED until the nightly build carries it; CARRIED while its summary waits for SUNAT; VOIDED once
-- SUNAT accepted it; FAILED when SUNAT refused it or it is past SUNAT's 7 days (a credit note is
-- needed), with SUNAT's code and text.
CREATE TABLE sale_cancellations (
    sale_id BIGINT PRIMARY KEY REFERENCES sales (id) ON DELETE CASCADE,
    reason TEXT NOT NULL CHECK (char_length(reason) BETWEEN 3 AND 100),
    cancelled_by TEXT NOT NULL,
    sunat_action TEXT NOT NULL CHECK (sunat_action IN ('NONE', 'BAJA', 'RESUMEN')),
    sunat_state TEXT NOT NULL
        CHECK (sunat_state IN ('NONE', 'QUEUED', 'CARRIED', 'VOIDED', 'FAILED')),
    sunat_code TEXT,
    sunat_description TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT sale_cancellations_state_of_action
        CHECK ((sunat_action = 'NONE') = (sunat_state = 'NONE'))
);
CREATE INDEX sale_cancellations_queued ON sale_cancellations (sunat_action)
    WHERE sunat_state = 'QUEUED';

-- The correlative N of RC-YYYYMMDD-N / RA-YYYYMMDD-N per kind and generation date, taken in the
-- transaction that inserts the summary. SUNAT never takes an ID twice (2223, 2324), so a number
-- is never given back: summaries are never deleted.
CREATE TABLE summary_counters (
    kind TEXT NOT NULL CHECK (kind IN ('RC', 'RA')),
    issue_date DATE NOT NULL,
    last_number INT NOT NULL CHECK (last_number BETWEEN 1 AND 99999),
    PRIMARY KEY (kind, issue_date)
);

-- A Resumen Diario or Comunicación de Baja. `issue_date` is the generation date in its ID (SUNAT
-- 2346), `reference_date` the issue date of every document it carries (2375). States: PENDING
-- (built; not sent, or a resend is due), SENT (SUNAT answered a ticket), ACCEPTED (the ticket
-- answered 0), REJECTED (99, or a fault that refused the file: its lines were not applied),
-- ERROR (needs a person: e.g. SUNAT already had this ID from a send whose answer was lost).
CREATE TABLE sunat_summaries (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('RC', 'RA')),
    issue_date DATE NOT NULL,
    number INT NOT NULL CHECK (number BETWEEN 1 AND 99999),
    reference_date DATE NOT NULL,
    state TEXT NOT NULL DEFAULT 'PENDING'
        CHECK (state IN ('PENDING', 'SENT', 'ACCEPTED', 'REJECTED', 'ERROR')),
    ticket TEXT,
    sunat_code TEXT,
    sunat_description TEXT,
    -- The class of the last sendSummary or getStatus answer (faena_sunat::Outcome::name, or
    -- in_process for 98).
    last_outcome TEXT,
    xml_path TEXT,
    cdr_path TEXT,
    signed_sha256 TEXT,
    -- sendSummary calls, and getStatus answers of 98.
    attempts INT NOT NULL DEFAULT 0,
    polls INT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    decided_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT sunat_summaries_id UNIQUE (kind, issue_date, number),
    CONSTRAINT sunat_summaries_dates CHECK (reference_date <= issue_date),
    CONSTRAINT sunat_summaries_ticket CHECK (state IN ('PENDING', 'ERROR', 'REJECTED') OR ticket IS NOT NULL)
);
CREATE INDEX sunat_summaries_open ON sunat_summaries (state) WHERE state IN ('PENDING', 'SENT');

-- One document in a summary: status 1 (add: a boleta SUNAT has not registered, after 1079) or 3
-- (void), with its amounts. `outcome` stays NULL until SUNAT answers the summary.
CREATE TABLE sunat_summary_lines (
    id BIGSERIAL PRIMARY KEY,
    summary_id BIGINT NOT NULL REFERENCES sunat_summaries (id) ON DELETE CASCADE,
    line_no INT NOT NULL CHECK (line_no BETWEEN 1 AND 99999),
    sale_id BIGINT NOT NULL REFERENCES sales (id),
    condition_code TEXT NOT NULL CHECK (condition_code IN ('1', '3')),
    doc_type TEXT NOT NULL CHECK (doc_type IN ('01', '03')),
    series TEXT NOT NULL,
    correlative BIGINT NOT NULL,
    subtotal NUMERIC(14, 2) NOT NULL,
    igv NUMERIC(14, 2) NOT NULL,
    total NUMERIC(14, 2) NOT NULL,
    outcome TEXT CHECK (outcome IN ('accepted', 'rejected')),
    CONSTRAINT sunat_summary_lines_line UNIQUE (summary_id, line_no),
    CONSTRAINT sunat_summary_lines_sale UNIQUE (summary_id, sale_id)
);
-- A document is never carried twice for the same purpose: at most one line per sale and status
-- that SUNAT has not refused (a refused summary applied nothing, so its documents may go again).
CREATE UNIQUE INDEX sunat_summary_lines_once ON sunat_summary_lines (sale_id, condition_code)
    WHERE outcome IS DISTINCT FROM 'rejected';
CREATE INDEX sunat_summary_lines_summary ON sunat_summary_lines (summary_id);

-- Nightly at 00:30 Lima (the worker rewrites the time from FAENA_SUNAT_SUMMARY_TIME at start).
INSERT INTO periodic_tasks (name, kind, cron, description) VALUES
    ('build-sunat-summaries', 'build_sunat_summaries', '0 30 0 * * *',
     'Daily at 00:30: the Resumen Diario and Comunicación de Baja of what waits until the previous day (voids, boletas answered 1079); resumes unanswered tickets');
