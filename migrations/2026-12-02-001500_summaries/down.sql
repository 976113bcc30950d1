DELETE FROM periodic_tasks WHERE name = 'build-sunat-summaries';
DROP TABLE sunat_summary_lines;
DROP TABLE sunat_summaries;
DROP TABLE summary_counters;
DROP TABLE sale_cancellations;
-- A voided receipt was accepted before SUNAT voided it.
UPDATE sales SET sunat_status = 'ACCEPTED' WHERE sunat_status = 'VOIDED';
ALTER TABLE sales DROP CONSTRAINT sales_sunat_status_check;
ALTER TABLE sales ADD CONSTRAINT sales_sunat_status_check CHECK (
    sunat_status IN ('PENDING', 'SENDING', 'ACCEPTED', 'REJECTED', 'ERROR', 'CONFLICT'));
