//! The one integration-test binary: every test boots the real application on port 0 against
//! a fresh world (a temp SQLite file, or a new PostgreSQL database when
//! `TOLLGATE_TEST_DATABASE_URL` is set; Redis with a random prefix when
//! `TOLLGATE_TEST_REDIS_URL` is set).

mod helpers;

mod analytics;
mod audit;
mod auth;
mod backends;
mod cli;
mod config;
mod dashboard;
mod errors;
mod exports;
mod gateway;
mod hot_path;
mod hot_path_faults;
mod jobs;
mod jwt;
mod key_cache;
mod keys;
mod limits;
mod live;
mod members;
mod metering;
mod migrations;
mod openapi;
mod ops;
mod rate_limits;
mod signup;
mod tenancy;
