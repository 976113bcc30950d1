//! The commands of `faena`, one module per role; `common` holds what several of them share.
//!
//! A command module imports `common` and `crate::exit`, never another command module.

pub(crate) mod common;
pub(crate) mod infra;
pub(crate) mod periodic;
pub(crate) mod products;
pub(crate) mod queues;
pub(crate) mod reports;
pub(crate) mod sales;
pub(crate) mod stores;
pub(crate) mod sunat;
pub(crate) mod tasks;
pub(crate) mod users;
