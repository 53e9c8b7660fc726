//! Tollgate: API usage metering, quota and cost control.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod entities;
pub mod error;
pub mod export;
pub mod gateway;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod keys;
pub mod kv;
pub mod limits;
pub mod metering;
pub mod money;
pub mod pagination;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tenancy;
pub mod tenants;

pub use error::{Error, ErrorKind, Result};
