-- Issue 15: a credit note of a boleta past its sendBill window (answered 1079) goes to SUNAT as
-- a line of type 07 of the day's Resumen Diario, with status 1 and its cac:BillingReference to
-- the boleta, as a 1079 boleta does with type 03. A note's line names the note
-- (`credit_note_id`) and keeps `sale_id` = the boleta it modifies; a boleta's line has no note.
-- Existing rows are not changed (they are all boletas' or facturas' lines).
ALTER TABLE sunat_summary_lines ADD COLUMN credit_note_id BIGINT REFERENCES credit_notes (id);
ALTER TABLE sunat_summary_lines DROP CONSTRAINT sunat_summary_lines_doc_type_check;
ALTER TABLE sunat_summary_lines ADD CONSTRAINT sunat_summary_lines_doc_type_check
    CHECK (doc_type IN ('01', '03', '07'));
ALTER TABLE sunat_summary_lines ADD CONSTRAINT sunat_summary_lines_note_of_type
    CHECK ((doc_type = '07') = (credit_note_id IS NOT NULL));

-- A boleta and its note may be in the same summary: one line per sale among the sales' lines,
-- one per note among the notes'.
ALTER TABLE sunat_summary_lines DROP CONSTRAINT sunat_summary_lines_sale;
CREATE UNIQUE INDEX sunat_summary_lines_sale ON sunat_summary_lines (summary_id, sale_id)
    WHERE credit_note_id IS NULL;
CREATE UNIQUE INDEX sunat_summary_lines_note ON sunat_summary_lines (summary_id, credit_note_id)
    WHERE credit_note_id IS NOT NULL;

-- Never two summaries for the same document and purpose that SUNAT has not refused: per sale
-- for the sales' lines, per note for the notes'.
DROP INDEX sunat_summary_lines_once;
CREATE UNIQUE INDEX sunat_summary_lines_once ON sunat_summary_lines (sale_id, condition_code)
    WHERE outcome IS DISTINCT FROM 'rejected' AND credit_note_id IS NULL;
CREATE UNIQUE INDEX sunat_summary_lines_note_once ON sunat_summary_lines (credit_note_id, condition_code)
    WHERE outcome IS DISTINCT FROM 'rejected' AND credit_note_id IS NOT NULL;
