//! Diesel table definitions of the kernel (kept by hand in step with `migrations/`): the
//! periodic schedules and the outbox. The back office's tables are in `faena_shop::schema`.

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
    faena_outbox (seq) {
        seq -> Int8,
        task_id -> Text,
        kind -> Text,
        queue -> Text,
        args -> Text,
        run_at -> Nullable<Timestamptz>,
        max_attempts -> Int4,
        idempotency_key -> Nullable<Text>,
        owner -> Nullable<Text>,
        created_at -> Timestamptz,
        last_error -> Nullable<Text>,
    }
}
