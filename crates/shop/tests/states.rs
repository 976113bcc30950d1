//! The state enums against PostgreSQL: every state is written to its `TEXT` column as its word
//! and read back, and a word that names no state reads as an error, not a panic.

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_shop::schema::reservations;
use faena_shop::states::{ReservationStatus, SunatStatus};
use faena_testkit::TestDb;

#[tokio::test]
async fn every_state_is_stored_as_its_word_and_read_back() -> anyhow::Result<()> {
    let db = TestDb::new("states").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    for &status in ReservationStatus::ALL {
        let id: i64 = diesel::insert_into(reservations::table)
            .values((
                reservations::status.eq(status),
                reservations::expires_at.eq(Utc::now()),
            ))
            .returning(reservations::id)
            .get_result(&mut conn)
            .await?;
        let row = reservations::table.find(id).select(reservations::status);
        assert_eq!(row.first::<ReservationStatus>(&mut conn).await?, status);
        assert_eq!(row.first::<String>(&mut conn).await?, status.as_str());
        let found: i64 = reservations::table
            .filter(reservations::status.eq_any([status]))
            .filter(reservations::id.eq(id))
            .count()
            .get_result(&mut conn)
            .await?;
        assert_eq!(found, 1, "{status}");
    }
    for &status in SunatStatus::ALL {
        let q = diesel::select(status.into_sql::<Text>());
        assert_eq!(q.get_result::<SunatStatus>(&mut conn).await?, status);
        assert_eq!(q.get_result::<String>(&mut conn).await?, status.as_str());
    }
    Ok(())
}

#[tokio::test]
async fn a_word_that_is_no_state_reads_as_an_error() -> anyhow::Result<()> {
    let db = TestDb::new("states_unknown").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    let e = diesel::select("SENT".into_sql::<Text>())
        .get_result::<SunatStatus>(&mut conn)
        .await
        .expect_err("SENT is no SUNAT status");
    assert!(
        matches!(e, diesel::result::Error::DeserializationError(_)),
        "{e:?}"
    );
    assert!(chain(&e).contains("`SENT` is not a SUNAT status"), "{e}");
    let e = diesel::select("active".into_sql::<Text>())
        .get_result::<ReservationStatus>(&mut conn)
        .await
        .expect_err("states are uppercase");
    assert!(
        chain(&e).contains("`active` is not a reservation status"),
        "{e}"
    );
    Ok(())
}

/// An error with its causes, as a log line shows them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}
