//! Every job this worker runs, by room: the kernel's diagnostic kinds, the shop's database jobs,
//! the SUNAT sends (sales and credit notes) and summaries, and the reports and cleanups. This module composes them into [`Handlers`].

pub mod credit_notes;
pub mod diagnostics;
pub mod reports;
pub mod shop;
pub mod summaries;
pub mod sunat;
pub mod unsent;

use std::sync::Arc;

use faena_core::db::PgPool;

use crate::handlers::Handlers;

impl Handlers {
    /// Every kind the worker process runs: [`Handlers::all`] plus the SUNAT, report and cleanup
    /// jobs. Its kinds are exactly those of `faena_shop::jobs::KINDS` (a test checks).
    pub fn production(
        db: PgPool,
        broker: faena_broker::Broker,
        settings: &faena_core::Settings,
    ) -> Self {
        let mut h = Self::all(db.clone());
        unsent::register(&mut h, db.clone(), broker.clone(), settings.tz);
        let sunat = Arc::new(sunat::SunatJobs::from_settings(
            db.clone(),
            broker.clone(),
            settings,
        ));
        Arc::clone(&sunat).register(&mut h);
        Arc::new(credit_notes::CreditNoteJobs::from_settings(
            db.clone(),
            broker,
            settings,
        ))
        .register(&mut h);
        Arc::new(summaries::SummaryJobs::from_settings(sunat, settings)).register(&mut h);
        Arc::new(reports::ReportJobs::from_settings(db, settings)).register(&mut h);
        h
    }

    /// The diagnostic kinds plus the jobs that need only the database (shop, tokens).
    pub fn all(db: PgPool) -> Self {
        let mut h = Self::builtin();
        shop::register(&mut h, db);
        h
    }

    /// The kernel's diagnostic kinds (`noop`, `sleep`, `fail`).
    pub fn builtin() -> Self {
        let mut h = Self::default();
        diagnostics::register(&mut h);
        h
    }
}
