-- Stock per store (issue 17): a product's stock is the sum of its stores' stocks, one row per
-- product and store that stocks it. A checkout or a sale takes stock from its store's row only
-- (one conditional UPDATE per line, as before), so sales of one product in two stores no longer
-- queue on one row. A store without a row for a product holds none of it.
--
-- `decimal_quantity` is the product's, copied here by the composite foreign key (ON UPDATE
-- CASCADE keeps it in step), so `product_stock_whole` is checked on the row that changes and
-- `take_stock` checks a fraction on the row it updates, without reading or locking the product's
-- row. The foreign keys are checked only when a row is inserted or its keys change, never when
-- a sale takes stock.
--
-- The migration moves every product's stock into the main store's row unchanged and drops
-- `products.stock` (one truth: readers sum the rows). The low-stock threshold stays the
-- product's (docs/decisions.md). Reservations record their store (no foreign key: a checkout must
-- not lock the store's row; stores are never deleted). Open stock alerts become the main store's.
ALTER TABLE products ADD CONSTRAINT products_id_decimal_quantity UNIQUE (id, decimal_quantity);

CREATE TABLE product_stock (
    product_id BIGINT NOT NULL,
    store_id BIGINT NOT NULL REFERENCES stores (id),
    decimal_quantity BOOLEAN NOT NULL,
    quantity NUMERIC(13, 3) NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (product_id, store_id),
    CONSTRAINT product_stock_product FOREIGN KEY (product_id, decimal_quantity)
        REFERENCES products (id, decimal_quantity) ON UPDATE CASCADE ON DELETE CASCADE,
    -- A product sold in whole units has a whole stock in every store.
    CONSTRAINT product_stock_whole CHECK (decimal_quantity OR quantity = trunc(quantity))
);

-- Stock alerts get their store below: the rule on which kinds have one changes around it.
ALTER TABLE insights DROP CONSTRAINT insights_store_insights_has_store;

DO $$
DECLARE
    main BIGINT;
BEGIN
    SELECT id INTO STRICT main FROM stores WHERE establishment_code = '0000';
    INSERT INTO product_stock (product_id, store_id, decimal_quantity, quantity)
        SELECT id, main, decimal_quantity, stock FROM products;
    -- A constant default, as sales.store_id: every existing reservation is the main store's.
    EXECUTE format('ALTER TABLE reservations ADD COLUMN store_id BIGINT NOT NULL DEFAULT %s', main);
    UPDATE insights SET store_id = main WHERE kind IN ('low_stock', 'out_of_stock');
END $$;

ALTER TABLE products DROP COLUMN stock;

-- Stock alerts are per product and store: at most one open per product and store.
ALTER TABLE insights ADD CONSTRAINT insights_store_insights_has_store
    CHECK ((kind IN ('store_insights', 'low_stock', 'out_of_stock')) = (store_id IS NOT NULL));
DROP INDEX insights_one_open_per_product;
CREATE UNIQUE INDEX insights_one_open_per_product ON insights (product_id, store_id)
    WHERE status = 'open' AND product_id IS NOT NULL;
