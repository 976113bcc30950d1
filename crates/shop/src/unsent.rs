//! Sales nobody is sending: PENDING sales whose send job is gone (never enqueued, purged, DEAD) and
//! SENDING sales whose send stopped without an outcome (its worker died, or it returned early). The
//! queries and conditional updates of the `rescue_unsent_sales` sweep; the job itself (which asks the
//! broker whether a send job still lives) is in `faena-worker`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::sales::SaleError;
use crate::schema::{sale_send_jobs, sales};
use crate::states::SunatStatus;

/// A sale the sweep looks at, with the send job last enqueued for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    pub sale_id: i64,
    pub task_id: Option<String>,
}

/// Not-cancelled sales in `status`, oldest first: PENDING ones created before `before`, SENDING ones
/// whose last send began before it.
async fn in_state_before(
    conn: &mut AsyncPgConnection,
    status: SunatStatus,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Unsent>, SaleError> {
    let mut q = sales::table
        .left_join(sale_send_jobs::table)
        .filter(sales::sunat_status.eq(status))
        .filter(sales::is_cancelled.eq(false))
        .into_boxed();
    q = match status {
        SunatStatus::Sending => q.filter(sales::sunat_sent_at.lt(before)),
        _ => q.filter(sales::created_at.lt(before)),
    };
    let found: Vec<(i64, Option<String>)> = q
        .order(sales::id.asc())
        .limit(limit)
        .select((sales::id, sale_send_jobs::task_id.nullable()))
        .load(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(|(sale_id, task_id)| Unsent { sale_id, task_id })
        .collect())
}

/// PENDING sales, not cancelled, created before `before`, oldest first.
pub async fn pending_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Unsent>, SaleError> {
    in_state_before(conn, SunatStatus::Pending, before, limit).await
}

/// SENDING sales, not cancelled, whose last send began before `before`, oldest first.
pub async fn sending_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Unsent>, SaleError> {
    in_state_before(conn, SunatStatus::Sending, before, limit).await
}

/// SENDING -> PENDING, only if it is still SENDING (the caller holds the sale's send lock, so no
/// attempt is inside its send). True when it changed.
pub async fn take_back(conn: &mut AsyncPgConnection, sale_id: i64) -> Result<bool, SaleError> {
    let n = diesel::update(
        sales::table
            .find(sale_id)
            .filter(sales::sunat_status.eq(SunatStatus::Sending)),
    )
    .set((
        sales::sunat_status.eq(SunatStatus::Pending),
        sales::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}
