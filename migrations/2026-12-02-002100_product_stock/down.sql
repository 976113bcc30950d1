-- Back to one stock per product: each product's stock is the sum of its stores' (a product
-- without rows has 0), and its alerts of stores other than the main one are deleted.
ALTER TABLE products ADD COLUMN stock NUMERIC(13, 3) NOT NULL DEFAULT 0 CHECK (stock >= 0);
UPDATE products p SET stock = coalesce(
    (SELECT sum(s.quantity) FROM product_stock s WHERE s.product_id = p.id), 0);
ALTER TABLE products ALTER COLUMN stock DROP DEFAULT;
ALTER TABLE products
    ADD CONSTRAINT products_whole_stock CHECK (decimal_quantity OR stock = trunc(stock));
DELETE FROM insights WHERE kind IN ('low_stock', 'out_of_stock')
    AND store_id IS DISTINCT FROM (SELECT id FROM stores WHERE establishment_code = '0000');
UPDATE insights SET store_id = NULL WHERE kind IN ('low_stock', 'out_of_stock');
DROP INDEX insights_one_open_per_product;
CREATE UNIQUE INDEX insights_one_open_per_product ON insights (product_id)
    WHERE status = 'open' AND product_id IS NOT NULL;
ALTER TABLE insights DROP CONSTRAINT insights_store_insights_has_store;
ALTER TABLE insights ADD CONSTRAINT insights_store_insights_has_store
    CHECK ((kind = 'store_insights') = (store_id IS NOT NULL));
ALTER TABLE reservations DROP COLUMN store_id;
DROP TABLE product_stock;
ALTER TABLE products DROP CONSTRAINT products_id_decimal_quantity;
