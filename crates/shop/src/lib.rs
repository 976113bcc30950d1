//! faena-shop: the back office of a Peruvian shop on top of the queue kernel: users and tokens,
//! products and checkout reservations (one way to take stock, [`stock`]), sales and their SUNAT
//! state (states as types, [`states`]), credit notes of accepted sales ([`credit_notes`]),
//! reports, insights, file retention, receipt files, and the application's jobs (their args and
//! the kind catalog).
//!
//! It knows PostgreSQL (its own tables in [`schema`]) and `faena-sunat`; it knows no Redis key,
//! no HTTP framework and runs no job loop: the worker's handlers call into it.

pub mod auth;
pub mod cancel;
pub mod credit_notes;
pub mod deadlines;
pub mod files;
pub mod insights;
pub mod money;
pub mod quantity;
pub mod reports;
pub mod resend;
pub mod retention;
pub mod sales;
pub mod schema;
pub mod sendable;
pub mod sessions;
pub mod shop;
pub mod states;
pub mod stock;
pub mod store_insights;
pub mod stores;
pub mod summaries;
pub mod terms;

/// The application's jobs: their args and the kind catalog (crate `faena-catalog`).
pub use faena_catalog as jobs;
