//! Diesel table definitions (kept by hand in step with `migrations/`).

diesel::table! {
    periodic_tasks (id) {
        id -> Int8,
        name -> Text,
        kind -> Text,
        args -> Jsonb,
        queue -> Nullable<Text>,
        cron -> Nullable<Text>,
        interval_secs -> Nullable<Int8>,
        timezone -> Text,
        enabled -> Bool,
        one_off -> Bool,
        expires_at -> Nullable<Timestamptz>,
        last_run_at -> Nullable<Timestamptz>,
        total_run_count -> Int8,
        description -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    products (id) {
        id -> Int8,
        sku -> Text,
        name -> Text,
        unit_price -> Numeric,
        stock -> Int4,
        version -> Int4,
        low_stock_threshold -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    reservations (id) {
        id -> Int8,
        user_id -> Nullable<Text>,
        status -> Text,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        released_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    reservation_items (reservation_id, product_id) {
        reservation_id -> Int8,
        product_id -> Int8,
        quantity -> Int4,
    }
}

diesel::joinable!(reservation_items -> products (product_id));
diesel::joinable!(reservation_items -> reservations (reservation_id));
diesel::allow_tables_to_appear_in_same_query!(
    products,
    reservations,
    reservation_items,
    periodic_tasks,
    users,
    refresh_tokens
);

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        token_hash -> Text,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
