//! A sale's SUNAT send against PostgreSQL: only the attempt that moved a sale to SENDING moves
//! it out (a late or second answer changes nothing), every SUNAT state fits the column, a 1033 is
//! ours only after an unsure send of the same bytes, and the retry sweep leaves a SOL login
//! failure alone until the settings change.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_shop::sales::{self, NewSale, NewSubmission, SaleItemInput, Seller, SendResult};
use faena_shop::schema::sales as sales_table;
use faena_shop::shop;
use faena_shop::states::SunatStatus;
use faena_testkit::TestDb;

async fn connect(label: &str) -> anyhow::Result<(TestDb, AsyncPgConnection)> {
    let db = TestDb::new(label).await?;
    let conn = AsyncPgConnection::establish(&db.url).await?;
    Ok((db, conn))
}

/// `n` anonymous boletas of one product.
async fn sales_of(conn: &mut AsyncPgConnection, n: usize) -> anyhow::Result<Vec<i64>> {
    let p = shop::create_product(
        conn,
        shop::NewProduct {
            sku: "INKA-500".into(),
            name: "Inca Kola 500 ml".into(),
            unit_price: "2.50".parse()?,
            stock: 1000.into(),
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    let seller = Seller {
        user_id: "7".into(),
        is_admin: false,
    };
    let mut ids = Vec::new();
    for _ in 0..n {
        let req = NewSale {
            items: Some(vec![SaleItemInput {
                product_id: p.id,
                quantity: faena_shop::quantity::Quantity::whole(1)?,
                discount: None,
                free: false,
            }]),
            ..Default::default()
        };
        let sale = sales::create_sale(conn, &seller, &req, &sales::SaleDefaults::default()).await?;
        ids.push(sale.id);
    }
    Ok(ids)
}

fn result(status: SunatStatus, outcome: &str, code: Option<&str>) -> SendResult {
    SendResult {
        status,
        outcome: outcome.into(),
        code: code.map(str::to_owned),
        description: Some(format!("{outcome} {code:?}")),
        ..Default::default()
    }
}

fn accepted() -> SendResult {
    SendResult {
        cdr_path: Some("cdr/R-20100066603-03-B001-1.zip".into()),
        pdf_path: Some("pdf/20100066603-03-B001-1.pdf".into()),
        qr_path: Some("pdf/20100066603-03-B001-1.png".into()),
        ..result(SunatStatus::Accepted, "accepted", Some("0000"))
    }
}

#[tokio::test]
async fn a_late_second_finish_changes_nothing() -> anyhow::Result<()> {
    let (_db, mut conn) = connect("sends_late").await?;
    let id = sales_of(&mut conn, 1).await?[0];
    assert_eq!(sales::begin_send(&mut conn, id, "task-a:1").await?, Ok(1));
    assert!(sales::finish_send(&mut conn, id, "task-a:1", &accepted()).await?);
    let before = sales::sale_row(&mut conn, id).await?;
    assert_eq!(before.sunat_status, SunatStatus::Accepted);

    // The same attempt answering again (a duplicate delivery), and an answer of an unknown
    // outcome with no CDR: neither overwrites ACCEPTED nor clears the stored CDR.
    for late in [
        result(SunatStatus::Pending, "unknown", None),
        result(SunatStatus::Rejected, "rejected", Some("2800")),
        SendResult {
            cdr_path: None,
            ..result(SunatStatus::Accepted, "already_registered", Some("1033"))
        },
    ] {
        assert!(!sales::finish_send(&mut conn, id, "task-a:1", &late).await?);
        assert!(!sales::finish_send(&mut conn, id, "task-b:2", &late).await?);
    }
    let after = sales::sale_row(&mut conn, id).await?;
    assert_eq!(after.sunat_status, SunatStatus::Accepted);
    assert_eq!(after.sunat_outcome.as_deref(), Some("accepted"));
    assert_eq!(after.sunat_code.as_deref(), Some("0000"));
    assert_eq!(after.cdr_path, before.cdr_path);
    assert_eq!(after.accepted_at, before.accepted_at);
    assert_eq!(after.updated_at, before.updated_at, "not even touched");
    // And an accepted sale is not sent again.
    assert_eq!(
        sales::begin_send(&mut conn, id, "task-c:3").await?,
        Err(sales::NotSendable::Done(SunatStatus::Accepted))
    );
    Ok(())
}

#[tokio::test]
async fn an_attempt_taken_over_cannot_finish() -> anyhow::Result<()> {
    let (_db, mut conn) = connect("sends_takeover").await?;
    let id = sales_of(&mut conn, 1).await?[0];
    // Attempt A begins; its lock expires; attempt B begins over the SENDING state A left.
    assert_eq!(sales::begin_send(&mut conn, id, "task-a:1").await?, Ok(1));
    assert!(sales::is_sending(&mut conn, id, "task-a:1").await?);
    assert_eq!(sales::begin_send(&mut conn, id, "task-b:2").await?, Ok(2));
    assert!(!sales::is_sending(&mut conn, id, "task-a:1").await?);
    assert!(sales::is_sending(&mut conn, id, "task-b:2").await?);
    // A's answer arrives: nothing changes, B still holds the sale.
    assert!(!sales::finish_send(&mut conn, id, "task-a:1", &accepted()).await?);
    let row = sales::sale_row(&mut conn, id).await?;
    assert_eq!(row.sunat_status, SunatStatus::Sending);
    assert_eq!(row.cdr_path, None);
    // B's answer moves it.
    let conflict = result(SunatStatus::Conflict, "conflict", Some("1033"));
    assert!(sales::finish_send(&mut conn, id, "task-b:2", &conflict).await?);
    let row = sales::sale_row(&mut conn, id).await?;
    assert_eq!(row.sunat_status, SunatStatus::Conflict);
    assert_eq!(row.pdf_path, None, "no receipt is printed for a conflict");
    // A conflict needs a person: it is not sent again by itself.
    assert!(sales::check_sendable(&row).is_err_and(|why| why.contains("CONFLICT")));
    assert_eq!(
        sales::begin_send(&mut conn, id, "task-c:3").await?,
        Err(sales::NotSendable::Done(SunatStatus::Conflict))
    );
    Ok(())
}

#[tokio::test]
async fn every_sunat_status_fits_the_sales_column() -> anyhow::Result<()> {
    let (_db, mut conn) = connect("sends_states").await?;
    let id = sales_of(&mut conn, 1).await?[0];
    for &status in SunatStatus::ALL {
        diesel::update(sales_table::table.find(id))
            .set(sales_table::sunat_status.eq(status))
            .execute(&mut conn)
            .await?;
        assert_eq!(sales::sale_row(&mut conn, id).await?.sunat_status, status);
    }
    Ok(())
}

fn submission(sale_id: i64, outcome: &str, signed: &str, fingerprint: &str) -> NewSubmission {
    NewSubmission {
        sale_id,
        attempt: 1,
        started_at: chrono::Utc::now(),
        duration_ms: 5,
        outcome: outcome.into(),
        code: None,
        description: None,
        http_status: None,
        task_id: None,
        signed_sha256: Some(signed.into()),
        settings_fingerprint: Some(fingerprint.into()),
    }
}

#[tokio::test]
async fn a_send_is_unsure_only_after_an_unknown_outcome_of_the_same_bytes() -> anyhow::Result<()> {
    let (_db, mut conn) = connect("sends_unsure").await?;
    let id = sales_of(&mut conn, 1).await?[0];
    assert!(!sales::sent_unsure_before(&mut conn, id, "aaaa").await?);
    sales::record_submission(&mut conn, &submission(id, "retryable", "aaaa", "v1:x")).await?;
    assert!(!sales::sent_unsure_before(&mut conn, id, "aaaa").await?);
    sales::record_submission(&mut conn, &submission(id, "unknown", "bbbb", "v1:x")).await?;
    assert!(!sales::sent_unsure_before(&mut conn, id, "aaaa").await?);
    assert!(sales::sent_unsure_before(&mut conn, id, "bbbb").await?);
    sales::record_submission(&mut conn, &submission(id, "in_process", "aaaa", "v1:x")).await?;
    assert!(sales::sent_unsure_before(&mut conn, id, "aaaa").await?);
    Ok(())
}

/// The ids the sweep would resend with settings `fingerprint`, in id order.
async fn due(conn: &mut AsyncPgConnection, fingerprint: Option<&str>) -> anyhow::Result<Vec<i64>> {
    let mut ids: Vec<i64> = faena_shop::sendable::Sendable::Sale
        .failed_to_retry(conn, chrono::Duration::hours(1), 50, fingerprint)
        .await?;
    ids.sort_unstable();
    Ok(ids)
}

#[tokio::test]
async fn the_sweep_resends_a_login_failure_only_with_other_settings() -> anyhow::Result<()> {
    let (_db, mut conn) = connect("sends_sweep").await?;
    let ids = sales_of(&mut conn, 3).await?;
    // Sale 0 failed the SOL login (0102) with settings v1:old; sale 1 got 0109 (service down)
    // with the same settings; sale 2 failed the login before fingerprints were recorded.
    for (id, code, fingerprint) in [
        (ids[0], "0102", Some("v1:old")),
        (ids[1], "0109", Some("v1:old")),
        (ids[2], "0104", None),
    ] {
        sales::begin_send(&mut conn, id, "t:1").await?.ok();
        let mut s = submission(id, "config_error", "aaaa", "-");
        s.code = Some(code.into());
        s.settings_fingerprint = fingerprint.map(str::to_owned);
        sales::record_submission(&mut conn, &s).await?;
        let outcome = if code == "0109" {
            "retryable"
        } else {
            "config_error"
        };
        assert!(
            sales::finish_send(
                &mut conn,
                id,
                "t:1",
                &result(SunatStatus::Error, outcome, Some(code))
            )
            .await?
        );
    }
    diesel::update(sales_table::table)
        .set(sales_table::sunat_sent_at.eq(chrono::Utc::now() - chrono::Duration::hours(2)))
        .execute(&mut conn)
        .await?;
    // The same settings: the login would fail again.
    assert_eq!(due(&mut conn, Some("v1:old")).await?, vec![ids[1], ids[2]]);
    // Settings that cannot be compared (incomplete): login failures wait.
    assert_eq!(due(&mut conn, None).await?, vec![ids[1]]);
    // The settings changed: every one is resent.
    assert_eq!(due(&mut conn, Some("v1:new")).await?, ids);
    Ok(())
}
