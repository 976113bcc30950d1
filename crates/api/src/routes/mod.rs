//! The api's routes, by resource.

pub mod auth;
pub mod health;
pub mod metrics;
pub mod periodic;
pub mod reports;
pub mod sales;
pub mod shop;
pub mod stores;
pub mod sunat;
pub mod tasks;
pub mod workflows;
