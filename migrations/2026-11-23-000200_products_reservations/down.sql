DROP TABLE reservation_items;
DROP TABLE reservations;
DROP TABLE products;
