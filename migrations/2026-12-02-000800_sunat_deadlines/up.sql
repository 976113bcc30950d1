-- SUNAT deadlines (issue 14): an insight `sunat_deadline` for a sale not yet ACCEPTED 24 hours before
-- the last day SUNAT takes it by sendBill (factura: 3 calendar days after its issue date, boleta: 5,
-- Lima time). At most one open per sale, even with two sweeps at once.
ALTER TABLE insights DROP CONSTRAINT IF EXISTS insights_kind_check;
ALTER TABLE insights ADD CONSTRAINT insights_kind_check
    CHECK (kind IN ('low_stock', 'out_of_stock', 'sales_summary', 'sunat_deadline'));
ALTER TABLE insights DROP CONSTRAINT insights_alert_has_product;
ALTER TABLE insights ADD CONSTRAINT insights_alert_has_product
    CHECK ((kind IN ('low_stock', 'out_of_stock')) = (product_id IS NOT NULL));
ALTER TABLE insights ADD COLUMN sale_id BIGINT REFERENCES sales (id) ON DELETE CASCADE;
ALTER TABLE insights ADD CONSTRAINT insights_deadline_has_sale
    CHECK ((kind = 'sunat_deadline') = (sale_id IS NOT NULL));
CREATE UNIQUE INDEX insights_one_open_per_sale ON insights (sale_id)
    WHERE status = 'open' AND sale_id IS NOT NULL;
-- The sales the sweep looks at: not decided by SUNAT.
CREATE INDEX sales_unsent_by_issue_date ON sales (issue_date)
    WHERE sunat_status IN ('PENDING', 'SENDING', 'ERROR') AND NOT is_cancelled;
