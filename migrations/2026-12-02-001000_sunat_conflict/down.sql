ALTER TABLE sunat_submissions DROP COLUMN signed_sha256;
-- A CONFLICT sale needs a person either way: ERROR is the closest state before this migration.
UPDATE sales SET sunat_status = 'ERROR' WHERE sunat_status = 'CONFLICT';
ALTER TABLE sales DROP CONSTRAINT sales_sunat_status_check;
ALTER TABLE sales ADD CONSTRAINT sales_sunat_status_check
    CHECK (sunat_status IN ('PENDING', 'SENDING', 'ACCEPTED', 'REJECTED', 'ERROR'));
