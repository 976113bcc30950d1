ALTER TABLE sale_items ALTER CONSTRAINT sale_items_sale_id_fkey NOT DEFERRABLE;
