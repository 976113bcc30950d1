DELETE FROM periodic_tasks
    WHERE name IN ('generate-insights', 'out-of-stock-alerts', 'weekly-sales-summary');
DELETE FROM insights WHERE kind IN ('store_insights', 'insights_summary');
DROP INDEX insights_store;
DROP INDEX insights_one_per_store_period;
DROP INDEX insights_one_per_period;
CREATE UNIQUE INDEX insights_one_per_period ON insights (kind, period) WHERE period IS NOT NULL;
ALTER TABLE insights DROP CONSTRAINT insights_store_insights_has_store;
ALTER TABLE insights DROP CONSTRAINT insights_kind_check;
ALTER TABLE insights ADD CONSTRAINT insights_kind_check
    CHECK (kind IN ('low_stock', 'out_of_stock', 'sales_summary', 'sunat_deadline'));
ALTER TABLE insights DROP COLUMN store_id;
DROP INDEX users_store;
DROP INDEX sales_store_issue_date;
ALTER TABLE users DROP COLUMN store_id;
ALTER TABLE sales DROP COLUMN store_id;
DROP TABLE stores;
