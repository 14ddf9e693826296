//! The HTTP routes, one module per resource.

pub mod admin;
pub mod batch;
pub mod health;
pub mod kv;
