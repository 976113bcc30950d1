ALTER TABLE sale_items
    DROP CONSTRAINT sale_items_one_discount,
    DROP COLUMN discount,
    DROP COLUMN icbper_amount,
    DROP COLUMN igv,
    DROP COLUMN value,
    DROP COLUMN discount_amount,
    DROP COLUMN discount_percent,
    DROP COLUMN free,
    DROP COLUMN icbper,
    DROP COLUMN igv_affectation,
    DROP COLUMN unit_code;
ALTER TABLE products DROP COLUMN icbper, DROP COLUMN unit_code, DROP COLUMN igv_affectation;
