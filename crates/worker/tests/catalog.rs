//! The application's catalog and the worker's handlers know the same kinds: a kind enqueued with
//! no handler would go DEAD (`unknown_kind`) in every worker, and a handler with no kind could
//! never be enqueued.

use std::collections::{BTreeSet, HashMap};

use faena_testkit::TestRedis;
use faena_worker::Handlers;

#[tokio::test]
async fn the_catalog_and_the_production_handlers_are_the_same_set() -> anyhow::Result<()> {
    let redis = TestRedis::new("catalog")?;
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", faena_testkit::database_url()),
        ("REDIS_URL", redis.url.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = faena_core::Settings::from_map(&vars)?;
    // Pools connect lazily: building the handlers touches no database.
    let pool = faena_core::db::create_pool(settings.database_url(), 1)?;
    let handlers = Handlers::production(pool, redis.broker.clone(), &settings);
    let handled: BTreeSet<&str> = handlers.kinds().into_iter().collect();
    let catalogued: BTreeSet<&str> = faena_catalog::KINDS.iter().map(|k| k.name).collect();
    assert_eq!(
        handled, catalogued,
        "kinds with a handler but no catalog entry, or the reverse"
    );
    assert_eq!(
        catalogued.len(),
        faena_catalog::KINDS.len(),
        "a kind is listed twice in the catalog"
    );
    // The broker built by the testkit validates against the same catalog.
    for kind in &catalogued {
        assert!(redis.broker.catalog().get(kind).is_some(), "{kind}");
    }
    Ok(())
}
