//! Diesel table definitions of the kernel (kept by hand in step with `migrations/`): the
//! periodic schedules. The back office's tables are in `faena_shop::schema`.

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
