DROP TABLE sunat_submissions;
DROP TABLE sale_items;
DROP TABLE sales;
DROP TABLE series_counters;
