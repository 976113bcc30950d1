//! Queuing the send of a sale or a credit note again (the sweeps'), above both modules so
//! `sendable` needs neither.

use diesel_async::AsyncPgConnection;
use faena_core::db::QueryError;

use crate::sendable::Sendable;

/// Queues a send of row `id` through the outbox in a transaction of its own, recording the
/// job as the row's last (`sales::queue_send`, `credit_notes::queue_send`).
pub async fn queue_send(
    doc: Sendable,
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<faena_core::TaskId, QueryError> {
    match doc {
            Sendable::Sale => crate::sales::queue_send(conn, id, None)
                .await
                .map_err(|e| match e {
                    crate::sales::SaleError::Db(q) => q,
                    other => {
                        tracing::error!(sale_id = id, error = %other, "cannot queue the sale's send");
                        QueryError::Unavailable
                    }
                }),
            Sendable::CreditNote => crate::credit_notes::queue_send(conn, id, None)
                .await
                .map_err(|e| match e {
                    crate::credit_notes::CreditNoteError::Db(q) => q,
                    other => {
                        tracing::error!(credit_note_id = id, error = %other, "cannot queue the note's send");
                        QueryError::Unavailable
                    }
                }),
        }
}
