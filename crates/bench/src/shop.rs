//! Back-office measurements on fresh databases, through `faena_shop`'s own functions (the api's code
//! without HTTP): checkouts of products, and sales on one series.

use std::time::{Duration, Instant};

use crate::hist::{collect, report};

/// Checkouts per second and latency, through `faena_shop::shop::checkout` (the api's code without
/// HTTP), from 16 concurrent callers each with its own connection: one hot product, then 1,000 products.
pub(crate) async fn checkouts(n_checkouts: usize) -> anyhow::Result<()> {
    if n_checkouts == 0 {
        return Ok(());
    }
    let db = faena_testkit::TestDb::new("benchshop").await?;
    let pool = faena_core::db::create_pool(&db.url, 17)?;
    let ids = seed_products(&pool, 1001, "10.00").await?;
    for (label, spread) in [("one hot product", 1usize), ("1,000 products", 1000)] {
        let per_task = n_checkouts / 16;
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for task in 0..16usize {
            let pool = pool.clone();
            let ids = ids.clone();
            set.spawn(async move {
                let mut conn = pool.get().await?;
                let mut lat = Vec::with_capacity(per_task);
                for n in 0..per_task {
                    let product_id = ids[if spread == 1 {
                        0
                    } else {
                        1 + (task * 7919 + n * 31) % 1000
                    }];
                    let req = faena_shop::shop::CheckoutRequest {
                        store_id: None,
                        items: vec![faena_shop::shop::CheckoutItem {
                            product_id,
                            quantity: faena_shop::quantity::Quantity::whole(1)?,
                            discount: None,
                            free: false,
                        }],
                    };
                    let s = Instant::now();
                    faena_shop::shop::checkout(&mut conn, &req, Duration::from_secs(900), None)
                        .await?;
                    lat.push(s.elapsed().as_micros() as u64);
                }
                Ok::<_, anyhow::Error>(lat)
            });
        }
        let hist = collect(set).await?;
        report(
            &format!("checkout ({label}, 16 callers)"),
            &hist,
            t.elapsed().as_secs_f64(),
            "checkouts",
        );
    }
    Ok(())
}

/// Sales per second through `faena_shop::sales::create_sale` (the api's code without HTTP): 16
/// callers on one series, so every sale waits for the series' counter row of the previous one.
pub(crate) async fn sales(n_sales: usize) -> anyhow::Result<()> {
    if n_sales == 0 {
        return Ok(());
    }
    let db = faena_testkit::TestDb::new("benchsales").await?;
    let pool = faena_core::db::create_pool(&db.url, 17)?;
    let ids = seed_products(&pool, 100, "2.50").await?;
    let per_task = n_sales / 16;
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..16usize {
        let pool = pool.clone();
        let ids = ids.clone();
        set.spawn(async move {
            let mut conn = pool.get().await?;
            let seller = faena_shop::sales::Seller {
                user_id: format!("{task}"),
                is_admin: false,
            };
            let defaults = faena_shop::sales::SaleDefaults::default();
            let mut lat = Vec::with_capacity(per_task);
            for n in 0..per_task {
                let req = faena_shop::sales::NewSale {
                    items: Some(vec![faena_shop::sales::SaleItemInput {
                        product_id: ids[(task * 13 + n) % ids.len()],
                        quantity: faena_shop::quantity::Quantity::whole(2)?,
                        discount: None,
                        free: false,
                    }]),
                    ..Default::default()
                };
                let s = Instant::now();
                faena_shop::sales::create_sale(&mut conn, &seller, &req, &defaults).await?;
                lat.push(s.elapsed().as_micros() as u64);
            }
            Ok::<_, anyhow::Error>(lat)
        });
    }
    let hist = collect(set).await?;
    report(
        "sales (one series, 16 callers)",
        &hist,
        t.elapsed().as_secs_f64(),
        "sales",
    );
    Ok(())
}

/// `n` products with practically endless stock at `price`; their ids.
async fn seed_products(
    pool: &faena_core::db::PgPool,
    n: usize,
    price: &str,
) -> anyhow::Result<Vec<i64>> {
    let mut conn = pool.get().await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let p = faena_shop::shop::create_product(
            &mut conn,
            faena_shop::shop::NewProduct {
                sku: format!("B-{i}"),
                name: format!("bench {i}"),
                unit_price: price.parse()?,
                stock: 1_000_000_000.into(),
                low_stock_threshold: 0.into(),
                igv_affectation: "10".into(),
                unit_code: "NIU".into(),
                icbper: false,
                decimal_quantity: false,
            },
        )
        .await?;
        ids.push(p.id);
    }
    Ok(ids)
}
