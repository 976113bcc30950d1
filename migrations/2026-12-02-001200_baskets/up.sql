-- Real shop baskets (issue 16): how each product is taxed, and each sale line as it was taxed.
--
-- Existing products become gravado (catálogo 07 code 10), sold in units (catálogo 03 NIU), no
-- ICBPER; existing sale lines the same, with the value and IGV the old rule gave them
-- (value = line_total / 1.18 to the cent, IGV = line_total - value), so nothing they print or
-- report changes.
ALTER TABLE products
    ADD COLUMN igv_affectation TEXT NOT NULL DEFAULT '10'
        CHECK (igv_affectation IN ('10', '11', '12', '13', '14', '15', '16', '20', '21',
                                   '30', '31', '32', '33', '34', '35', '36', '37')),
    ADD COLUMN unit_code TEXT NOT NULL DEFAULT 'NIU' CHECK (length(unit_code) BETWEEN 1 AND 3),
    ADD COLUMN icbper BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE sale_items
    ADD COLUMN unit_code TEXT NOT NULL DEFAULT 'NIU',
    -- As written on the receipt: a free line's gratuitous code (15, 21, 31).
    ADD COLUMN igv_affectation TEXT NOT NULL DEFAULT '10',
    ADD COLUMN icbper BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN free BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN discount_percent NUMERIC(5, 2) CHECK (discount_percent > 0 AND discount_percent < 100),
    ADD COLUMN discount_amount NUMERIC(12, 2) CHECK (discount_amount > 0),
    -- The line's LineExtensionAmount, IGV, ICBPER and discount (with taxes), to the cent.
    ADD COLUMN value NUMERIC(14, 2),
    ADD COLUMN igv NUMERIC(14, 2),
    ADD COLUMN icbper_amount NUMERIC(14, 2) NOT NULL DEFAULT 0,
    ADD COLUMN discount NUMERIC(14, 2) NOT NULL DEFAULT 0,
    ADD CONSTRAINT sale_items_one_discount CHECK (discount_percent IS NULL OR discount_amount IS NULL);

UPDATE sale_items SET value = round(line_total / 1.18, 2);
UPDATE sale_items SET igv = line_total - value;
ALTER TABLE sale_items ALTER COLUMN value SET NOT NULL, ALTER COLUMN igv SET NOT NULL;
