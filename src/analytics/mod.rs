//! Analytics: questions about usage answered from the rollups (`metering::rollup`), merging
//! bucket totals and latency sketches instead of scanning raw events.

pub mod query;

pub use query::{Filter, Question, Tenants, Window};
