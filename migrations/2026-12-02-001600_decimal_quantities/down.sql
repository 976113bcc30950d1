-- Back to whole quantities: a decimal quantity is rounded (1.250 -> 1), which loses the weighed
-- goods' fractions; run it only before any product is sold by weight.
ALTER TABLE sale_items ALTER COLUMN quantity TYPE INTEGER USING greatest(round(quantity), 1);
ALTER TABLE reservation_items
    DROP CONSTRAINT reservation_items_free_without_discount,
    DROP CONSTRAINT reservation_items_one_discount,
    DROP COLUMN discount_amount,
    DROP COLUMN discount_percent,
    DROP COLUMN free,
    ALTER COLUMN quantity TYPE INTEGER USING greatest(round(quantity), 1);
ALTER TABLE products
    DROP CONSTRAINT products_whole_stock,
    ALTER COLUMN low_stock_threshold TYPE INTEGER USING round(low_stock_threshold),
    ALTER COLUMN stock TYPE INTEGER USING trunc(stock),
    DROP COLUMN decimal_quantity;
