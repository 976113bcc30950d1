-- CONFLICT: SUNAT already holds the sale's number with other data (1033, 0402, 2223, 4000) or as
-- voided or rejected (1032), and no earlier send of ours with the same signed bytes may have put
-- it there. A person must look; the sale is never sent again by itself and prints no receipt.
ALTER TABLE sales DROP CONSTRAINT sales_sunat_status_check;
ALTER TABLE sales ADD CONSTRAINT sales_sunat_status_check
    CHECK (sunat_status IN ('PENDING', 'SENDING', 'ACCEPTED', 'REJECTED', 'ERROR', 'CONFLICT'));

-- Per sendBill call, the SHA-256 of the signed XML it carried: a later 1033 or 1032 is read as
-- our own first send only after an unknown or in-process outcome of these same bytes.
ALTER TABLE sunat_submissions ADD COLUMN signed_sha256 TEXT;
