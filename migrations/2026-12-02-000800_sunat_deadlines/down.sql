DROP INDEX sales_unsent_by_issue_date;
DELETE FROM insights WHERE kind = 'sunat_deadline';
DROP INDEX insights_one_open_per_sale;
ALTER TABLE insights DROP CONSTRAINT insights_deadline_has_sale;
ALTER TABLE insights DROP COLUMN sale_id;
ALTER TABLE insights DROP CONSTRAINT insights_alert_has_product;
ALTER TABLE insights ADD CONSTRAINT insights_alert_has_product
    CHECK ((kind = 'sales_summary') = (product_id IS NULL));
ALTER TABLE insights DROP CONSTRAINT insights_kind_check;
ALTER TABLE insights ADD CONSTRAINT insights_kind_check
    CHECK (kind IN ('low_stock', 'out_of_stock', 'sales_summary'));
