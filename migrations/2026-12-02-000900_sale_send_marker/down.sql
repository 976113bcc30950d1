ALTER TABLE sales DROP COLUMN sunat_send_marker;
