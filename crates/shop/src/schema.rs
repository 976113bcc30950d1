//! Diesel table definitions of the back office (kept by hand in step with `migrations/`).

diesel::table! {
    products (id) {
        id -> Int8,
        sku -> Text,
        name -> Text,
        unit_price -> Numeric,
        version -> Int4,
        low_stock_threshold -> Numeric,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        igv_affectation -> Text,
        unit_code -> Text,
        icbper -> Bool,
        decimal_quantity -> Bool,
    }
}

diesel::table! {
    /// Each product's stock in each store that stocks it (`stock.rs`); `decimal_quantity` is
    /// the product's, kept in step by the foreign key.
    product_stock (product_id, store_id) {
        product_id -> Int8,
        store_id -> Int8,
        decimal_quantity -> Bool,
        quantity -> Numeric,
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
        /// The store whose stock the checkout took (no foreign key, see the migration).
        store_id -> Int8,
    }
}

diesel::joinable!(product_stock -> products (product_id));
diesel::joinable!(product_stock -> stores (store_id));

diesel::table! {
    reservation_items (reservation_id, product_id) {
        reservation_id -> Int8,
        product_id -> Int8,
        quantity -> Numeric,
        free -> Bool,
        discount_percent -> Nullable<Numeric>,
        discount_amount -> Nullable<Numeric>,
    }
}

diesel::joinable!(reservation_items -> products (product_id));
diesel::joinable!(reservation_items -> reservations (reservation_id));
diesel::allow_tables_to_appear_in_same_query!(
    products,
    product_stock,
    stores,
    reservations,
    reservation_items,
    users,
    refresh_tokens,
    console_sessions,
    series_counters,
    sales,
    sale_items,
    sunat_submissions,
    sale_send_jobs,
    sale_cancellations,
    sunat_summaries,
    sunat_summary_lines,
    credit_notes,
    credit_note_items
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
        store_id -> Int8,
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
    sale_items (id) {
        id -> Int8,
        sale_id -> Int8,
        product_id -> Nullable<Int8>,
        sku -> Text,
        description -> Text,
        quantity -> Numeric,
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
        store_id -> Nullable<Int8>,
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

diesel::table! {
    /// Stores: each a SUNAT establishment with its own series (`stores.rs`).
    stores (id) {
        id -> Int8,
        code -> Text,
        name -> Text,
        address -> Text,
        establishment_code -> Text,
        active -> Bool,
        boleta_series -> Text,
        factura_series -> Text,
        boleta_note_series -> Text,
        factura_note_series -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// The store of each sale: `sales.store_id`, which `sales` above leaves out (diesel's tables
    /// take 32 columns). Only `stores.rs` and `store_insights.rs` use it.
    #[sql_name = "sales"]
    sale_stores (id) {
        id -> Int8,
        store_id -> Int8,
        doc_type -> Text,
        is_cancelled -> Bool,
        sunat_status -> Text,
    }
}

diesel::joinable!(users -> stores (store_id));
diesel::joinable!(sale_stores -> stores (store_id));
diesel::joinable!(insights -> stores (store_id));
diesel::allow_tables_to_appear_in_same_query!(stores, sale_stores);
diesel::allow_tables_to_appear_in_same_query!(stores, insights);

diesel::table! {
    /// Why, by whom and how a sale was cancelled (issue 15); `sales.is_cancelled` and
    /// `cancelled_at` are set in the same transaction.
    sale_cancellations (sale_id) {
        sale_id -> Int8,
        reason -> Text,
        cancelled_by -> Text,
        sunat_action -> Text,
        sunat_state -> Text,
        sunat_code -> Nullable<Text>,
        sunat_description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        /// The whole credit note of a cancellation past the voiding window (route CREDIT_NOTE).
        credit_note_id -> Nullable<Int8>,
    }
}

diesel::table! {
    summary_counters (kind, issue_date) {
        kind -> Text,
        issue_date -> Date,
        last_number -> Int4,
    }
}

diesel::table! {
    sunat_summaries (id) {
        id -> Int8,
        kind -> Text,
        issue_date -> Date,
        number -> Int4,
        reference_date -> Date,
        state -> Text,
        ticket -> Nullable<Text>,
        sunat_code -> Nullable<Text>,
        sunat_description -> Nullable<Text>,
        last_outcome -> Nullable<Text>,
        xml_path -> Nullable<Text>,
        cdr_path -> Nullable<Text>,
        signed_sha256 -> Nullable<Text>,
        attempts -> Int4,
        polls -> Int4,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        decided_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sunat_summary_lines (id) {
        id -> Int8,
        summary_id -> Int8,
        line_no -> Int4,
        sale_id -> Int8,
        condition_code -> Text,
        doc_type -> Text,
        series -> Text,
        correlative -> Int8,
        subtotal -> Numeric,
        igv -> Numeric,
        total -> Numeric,
        outcome -> Nullable<Text>,
        credit_note_id -> Nullable<Int8>,
    }
}

diesel::joinable!(sale_cancellations -> sales (sale_id));
diesel::joinable!(sunat_summary_lines -> sunat_summaries (summary_id));
diesel::joinable!(sunat_summary_lines -> sales (sale_id));

diesel::table! {
    /// Credit notes of accepted sales (issue 15).
    credit_notes (id) {
        id -> Int8,
        sale_id -> Int8,
        created_by -> Text,
        series -> Text,
        correlative -> Int8,
        issue_date -> Date,
        issued_at -> Timestamptz,
        reason_code -> Text,
        description -> Text,
        currency -> Text,
        subtotal -> Numeric,
        igv -> Numeric,
        icbper -> Numeric,
        total -> Numeric,
        sunat_status -> Text,
        sunat_outcome -> Nullable<Text>,
        sunat_code -> Nullable<Text>,
        sunat_description -> Nullable<Text>,
        sunat_notes -> Jsonb,
        sunat_attempts -> Int4,
        sunat_sent_at -> Nullable<Timestamptz>,
        accepted_at -> Nullable<Timestamptz>,
        sunat_send_marker -> Nullable<Text>,
        unsure_sha256 -> Nullable<Text>,
        digest_value -> Nullable<Text>,
        xml_path -> Nullable<Text>,
        cdr_path -> Nullable<Text>,
        pdf_path -> Nullable<Text>,
        qr_path -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        /// The send job last queued for the note (`queue_send_in_tx`).
        send_task_id -> Nullable<Text>,
    }
}

diesel::table! {
    credit_note_items (id) {
        id -> Int8,
        credit_note_id -> Int8,
        sale_item_id -> Int8,
        product_id -> Nullable<Int8>,
        quantity -> Numeric,
        credited_before -> Numeric,
        value -> Numeric,
        igv -> Numeric,
        icbper_amount -> Numeric,
        line_total -> Numeric,
    }
}

diesel::joinable!(credit_notes -> sales (sale_id));
diesel::joinable!(credit_note_items -> credit_notes (credit_note_id));
diesel::joinable!(credit_note_items -> sale_items (sale_item_id));
