//! Usage exports: every raw event, or every rollup bucket, of a [`Question`] as CSV or JSON,
//! streamed page by page. Pages are read with keyset pagination in time order, so an export
//! of any length holds one page in memory at a time; the HTTP handler
//! (`GET /v1/exports/usage`) and `tollgate export` both stream [`Export::into_stream`].
//!
//! - `events.rs`, `buckets.rs`: the pages of each level and their columns.
//! - `encode.rs`: cells, CSV (RFC 4180, formula-injection safe) and the JSON array.
//! - `lookups.rs`: key names and tenant currencies, loaded once per export.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use futures_util::{Stream, stream};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{Error, Result, analytics::Question, metering::rollup::Granularity};

mod buckets;
mod encode;
mod events;
mod lookups;

pub use encode::{csv_safe, decimal_millis, money};

use encode::Encoder;
use lookups::Lookups;

/// Rows read per database round trip (and encoded per chunk).
pub const PAGE_ROWS: u64 = 2_000;

/// The file format of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    #[default]
    Csv,
    /// One JSON array of objects.
    Json,
}

/// What one row of an export is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One row per rollup bucket (granularity, tenant, key, endpoint, method, status class).
    #[default]
    Bucket,
    /// One row per metered call.
    Event,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(Error::bad_request(format!(
                "`format` must be `csv` or `json` (got `{s}`)."
            ))),
        }
    }
}

impl FromStr for Level {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bucket" => Ok(Level::Bucket),
            "event" => Ok(Level::Event),
            _ => Err(Error::bad_request(format!(
                "`level` must be `bucket` or `event` (got `{s}`)."
            ))),
        }
    }
}

/// Parses a `granularity` (`minute`, `hour` or `day`).
pub fn parse_granularity(s: &str) -> Result<Granularity> {
    Granularity::parse(s).ok_or_else(|| {
        Error::bad_request(format!(
            "`granularity` must be `minute`, `hour` or `day` (got `{s}`)."
        ))
    })
}

/// What to export: whose usage, when, which traffic, at which level, in which format.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub question: Question,
    pub level: Level,
    /// The bucket size (bucket level only).
    pub granularity: Granularity,
    pub format: Format,
}

/// A piece of the encoded export and how many rows it holds.
#[derive(Debug)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub rows: u64,
}

/// A started export: its lookups are loaded (a database failure so far is an ordinary
/// error); its rows are read as the stream is polled.
pub struct Export {
    db: DatabaseConnection,
    request: ExportRequest,
    lookups: Lookups,
    pages: Pages,
    encoder: Encoder,
    stage: Stage,
}

enum Pages {
    Events(events::Pages),
    Buckets(buckets::Pages),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Rows,
    Done,
}

/// Loads what every row needs (key names, currencies) and prepares the pages.
pub async fn start(db: &DatabaseConnection, request: ExportRequest) -> Result<Export> {
    let lookups = Lookups::load(db, request.question.tenants).await?;
    let question = &request.question;
    let (pages, columns) = match request.level {
        Level::Event => (
            Pages::Events(events::Pages::new(question)),
            &events::COLUMNS[..],
        ),
        Level::Bucket => (
            Pages::Buckets(buckets::Pages::new(question, request.granularity)),
            &buckets::COLUMNS[..],
        ),
    };
    Ok(Export {
        db: db.clone(),
        encoder: Encoder::new(request.format, columns),
        request,
        lookups,
        pages,
        stage: Stage::Header,
    })
}

impl Export {
    pub fn content_type(&self) -> &'static str {
        self.request.format.content_type()
    }

    /// `tollgate-usage-<from>-<to>.<ext>`, the window's bounds as `20261123T1000Z`.
    pub fn file_name(&self) -> String {
        let window = &self.request.question.window;
        format!(
            "tollgate-usage-{}-{}.{}",
            compact(window.from),
            compact(window.to),
            self.request.format.extension()
        )
    }

    /// The encoded export: the header, one chunk per page, the footer. A database failure
    /// mid-way is logged and ends the stream with that error (the reader sees a truncated
    /// export, never a complete-looking one).
    pub fn into_stream(self) -> impl Stream<Item = Result<Chunk>> + Send + 'static {
        stream::try_unfold(self, |mut export| async move {
            match export.next_chunk().await {
                Ok(Some(chunk)) => Ok(Some((chunk, export))),
                Ok(None) => Ok(None),
                Err(err) => {
                    tracing::error!(error = %err, "usage export failed mid-stream");
                    Err(err)
                }
            }
        })
    }

    async fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        match self.stage {
            Stage::Header => {
                self.stage = Stage::Rows;
                let bytes = self.encoder.header()?;
                Ok(Some(Chunk { bytes, rows: 0 }))
            }
            Stage::Rows => {
                let page = match &mut self.pages {
                    Pages::Events(pages) => {
                        pages
                            .next(&self.db, &mut self.encoder, &self.lookups)
                            .await?
                    }
                    Pages::Buckets(pages) => {
                        pages
                            .next(&self.db, &mut self.encoder, &self.lookups)
                            .await?
                    }
                };
                if page.is_some() {
                    return Ok(page);
                }
                self.stage = Stage::Done;
                let bytes = self.encoder.footer();
                Ok((!bytes.is_empty()).then_some(Chunk { bytes, rows: 0 }))
            }
            Stage::Done => Ok(None),
        }
    }
}

fn compact(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%MZ").to_string()
}
