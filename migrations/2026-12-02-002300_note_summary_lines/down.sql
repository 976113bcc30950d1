DROP INDEX sunat_summary_lines_note_once;
DROP INDEX sunat_summary_lines_once;
DELETE FROM sunat_summary_lines WHERE credit_note_id IS NOT NULL;
CREATE UNIQUE INDEX sunat_summary_lines_once ON sunat_summary_lines (sale_id, condition_code)
    WHERE outcome IS DISTINCT FROM 'rejected';
DROP INDEX sunat_summary_lines_note;
DROP INDEX sunat_summary_lines_sale;
ALTER TABLE sunat_summary_lines ADD CONSTRAINT sunat_summary_lines_sale UNIQUE (summary_id, sale_id);
ALTER TABLE sunat_summary_lines DROP CONSTRAINT sunat_summary_lines_note_of_type;
ALTER TABLE sunat_summary_lines DROP CONSTRAINT sunat_summary_lines_doc_type_check;
ALTER TABLE sunat_summary_lines ADD CONSTRAINT sunat_summary_lines_doc_type_check
    CHECK (doc_type IN ('01', '03'));
ALTER TABLE sunat_summary_lines DROP COLUMN credit_note_id;
