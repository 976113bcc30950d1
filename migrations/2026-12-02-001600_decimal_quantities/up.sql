-- Decimal quantities (issue 16): a product says whether it is sold by weight or measure
-- (`decimal_quantity`), and every quantity becomes an exact decimal with 3 decimals: the stock
-- and its alert threshold, what a reservation holds, what a sale line sold.
--
-- NUMERIC(13, 3), not (12, 3): INTEGER held up to 2147483647 and 12 digits with 3 decimals stop
-- at 999999999.999, so a stock of a thousand million (the benchmark's) would not migrate. Every
-- existing value is an integer and converts exactly (5 -> 5.000); existing products are sold in
-- whole units (decimal_quantity false), as before.
ALTER TABLE products
    ADD COLUMN decimal_quantity BOOLEAN NOT NULL DEFAULT FALSE,
    ALTER COLUMN stock TYPE NUMERIC(13, 3),
    ALTER COLUMN low_stock_threshold TYPE NUMERIC(13, 3);
-- A product sold in whole units has a whole stock: the last line of defence behind the api's
-- checks (a fractional quantity of such a product is refused before any stock moves).
ALTER TABLE products
    ADD CONSTRAINT products_whole_stock CHECK (decimal_quantity OR stock = trunc(stock));

-- A checkout line carries the sale terms the sale made from it will use (issue 16: checkout
-- lines take `discount` and `free` like sale lines).
ALTER TABLE reservation_items
    ALTER COLUMN quantity TYPE NUMERIC(13, 3),
    ADD COLUMN free BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN discount_percent NUMERIC(5, 2) CHECK (discount_percent > 0 AND discount_percent < 100),
    ADD COLUMN discount_amount NUMERIC(12, 2) CHECK (discount_amount > 0),
    ADD CONSTRAINT reservation_items_one_discount
        CHECK (discount_percent IS NULL OR discount_amount IS NULL),
    ADD CONSTRAINT reservation_items_free_without_discount
        CHECK (NOT free OR (discount_percent IS NULL AND discount_amount IS NULL));

ALTER TABLE sale_items ALTER COLUMN quantity TYPE NUMERIC(13, 3);
