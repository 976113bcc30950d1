//! Diesel table definitions of the back office (kept by hand in step with `migrations/`).

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
        igv_affectation -> Text,
        unit_code -> Text,
        icbper -> Bool,
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
    users,
    refresh_tokens,
    console_sessions,
    series_counters,
    sales,
    sale_items,
    sunat_submissions,
    sale_send_jobs
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

diesel::table! {
    console_sessions (id) {
        id -> Int8,
        token_hash -> Text,
        user_id -> Int8,
        csrf_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(console_sessions -> users (user_id));

diesel::table! {
    series_counters (series) {
        series -> Text,
        last_correlative -> Int8,
    }
}

diesel::table! {
    sales (id) {
        id -> Int8,
        seller_id -> Text,
        reservation_id -> Nullable<Int8>,
        doc_type -> Text,
        series -> Text,
        correlative -> Int8,
        issue_date -> Date,
        issued_at -> Timestamptz,
        customer_doc_type -> Text,
        customer_doc_number -> Text,
        customer_name -> Text,
        currency -> Text,
        subtotal -> Numeric,
        igv -> Numeric,
        total -> Numeric,
        is_cancelled -> Bool,
        cancelled_at -> Nullable<Timestamptz>,
        sunat_status -> Text,
        sunat_outcome -> Nullable<Text>,
        sunat_code -> Nullable<Text>,
        sunat_description -> Nullable<Text>,
        sunat_notes -> Jsonb,
        sunat_attempts -> Int4,
        sunat_sent_at -> Nullable<Timestamptz>,
        accepted_at -> Nullable<Timestamptz>,
        digest_value -> Nullable<Text>,
        xml_path -> Nullable<Text>,
        cdr_path -> Nullable<Text>,
        pdf_path -> Nullable<Text>,
        qr_path -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// The columns of `sales` that a send to SUNAT reads and writes, with `sunat_send_marker`,
    /// which `sales` above leaves out: diesel's tables take 32 columns (`sales` has 33), and its
    /// `64-column-tables` feature more than triples diesel's build time. Only `sales::begin_send`,
    /// `is_sending` and `finish_send` use it.
    #[sql_name = "sales"]
    sale_sends (id) {
        id -> Int8,
        is_cancelled -> Bool,
        sunat_status -> Text,
        sunat_outcome -> Nullable<Text>,
        sunat_code -> Nullable<Text>,
        sunat_description -> Nullable<Text>,
        sunat_notes -> Jsonb,
        sunat_attempts -> Int4,
        sunat_sent_at -> Nullable<Timestamptz>,
        accepted_at -> Nullable<Timestamptz>,
        cdr_path -> Nullable<Text>,
        pdf_path -> Nullable<Text>,
        qr_path -> Nullable<Text>,
        updated_at -> Timestamptz,
        /// The attempt (`task_id:token`) that moved the sale to SENDING.
        sunat_send_marker -> Nullable<Text>,
    }
}

diesel::table! {
    sale_items (id) {
        id -> Int8,
        sale_id -> Int8,
        product_id -> Nullable<Int8>,
        sku -> Text,
        description -> Text,
        quantity -> Int4,
        unit_price -> Numeric,
        line_total -> Numeric,
        unit_code -> Text,
        igv_affectation -> Text,
        icbper -> Bool,
        free -> Bool,
        discount_percent -> Nullable<Numeric>,
        discount_amount -> Nullable<Numeric>,
        value -> Numeric,
        igv -> Numeric,
        icbper_amount -> Numeric,
        discount -> Numeric,
    }
}

diesel::table! {
    sunat_submissions (id) {
        id -> Int8,
        sale_id -> Int8,
        attempt -> Int4,
        started_at -> Timestamptz,
        duration_ms -> Int4,
        outcome -> Text,
        code -> Nullable<Text>,
        description -> Nullable<Text>,
        http_status -> Nullable<Int4>,
        task_id -> Nullable<Text>,
        signed_sha256 -> Nullable<Text>,
        settings_fingerprint -> Nullable<Text>,
    }
}

diesel::joinable!(sale_items -> sales (sale_id));
diesel::joinable!(sunat_submissions -> sales (sale_id));
diesel::joinable!(sales -> reservations (reservation_id));

diesel::table! {
    reports (id) {
        id -> Int8,
        kind -> Text,
        period -> Text,
        data -> Jsonb,
        csv_path -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    insights (id) {
        id -> Int8,
        kind -> Text,
        product_id -> Nullable<Int8>,
        period -> Nullable<Text>,
        status -> Text,
        data -> Jsonb,
        opened_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        sale_id -> Nullable<Int8>,
    }
}

diesel::joinable!(insights -> products (product_id));
diesel::allow_tables_to_appear_in_same_query!(insights, products);
diesel::allow_tables_to_appear_in_same_query!(insights, sales);

diesel::table! {
    sale_send_jobs (sale_id) {
        sale_id -> Int8,
        task_id -> Text,
        enqueued_at -> Timestamptz,
    }
}

diesel::joinable!(sale_send_jobs -> sales (sale_id));
