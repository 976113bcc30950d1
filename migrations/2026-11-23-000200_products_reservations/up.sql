-- Products and checkout reservations (issue 5). Stock can never go negative: the CHECK is the last line
-- of defence behind the row locks taken in product-id order.
CREATE TABLE products (
    id BIGSERIAL PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE CHECK (length(sku) BETWEEN 1 AND 64),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    unit_price NUMERIC(12, 2) NOT NULL CHECK (unit_price >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    version INTEGER NOT NULL DEFAULT 0,
    low_stock_threshold INTEGER NOT NULL DEFAULT 5 CHECK (low_stock_threshold >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE reservations (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT,
    status TEXT NOT NULL DEFAULT 'ACTIVE'
        CHECK (status IN ('ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'CANCELLED')),
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at TIMESTAMPTZ,
    released_at TIMESTAMPTZ
);
-- The release job scans only ACTIVE reservations by expiry.
CREATE INDEX reservations_active_expiry ON reservations (expires_at) WHERE status = 'ACTIVE';

CREATE TABLE reservation_items (
    reservation_id BIGINT NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, product_id)
);
CREATE INDEX reservation_items_product ON reservation_items (product_id);
