//! Usage exports: `GET /v1/exports/usage` streams raw events or rollup buckets as a CSV or
//! JSON download (see `crate::export`).

use actix_web::{HttpResponse, get, http::header, web};
use futures_util::TryStreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::analytics::QuestionParams;
use crate::{
    error::Result,
    export::{self, ExportRequest, Format, Level},
    http::{auth::Caller, extractors::Query, problem::Problem},
    metering::rollup::Granularity,
    state::AppState,
    tenancy::Permission,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(export_usage);
}

/// The shape of an export; the window and filters are the analytics questions' own.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (default) or `json`.
    format: Option<Format>,
    /// `bucket` (default): one row per rollup bucket; `event`: one row per metered call.
    level: Option<Level>,
    /// Bucket level: the bucket size. Default: minutes up to 6 hours, hours up to 14 days,
    /// days beyond.
    granularity: Option<Granularity>,
}

/// Export usage
///
/// Streams the usage of a time window as a file download: raw events (`level=event`, in
/// `(occurred_at, id)` order) or rollup buckets (`level=bucket`, in bucket order, with
/// latency percentiles), as CSV (RFC 4180, header row; text cells starting with `=`, `+`,
/// `-`, `@`, tab or CR are prefixed with `'`) or as one JSON array. Costs are exact decimal
/// strings in the tenant's currency; times are UTC. Owners, admins and finance members export
/// their active tenant's usage; platform administrators every tenant's (one tenant after
/// another) or the one they name. A transfer that ends without the final chunk is
/// incomplete: the server failed mid-way.
#[utoipa::path(
    tag = "exports",
    security(("bearer" = [])),
    params(QuestionParams, ExportParams),
    responses(
        (status = 200, description = "The export, as an attachment.", content(
            (String = "text/csv"),
            (Vec<serde_json::Value> = "application/json"),
        ), headers(("Content-Disposition" = String, description = "`attachment; filename=\"tollgate-usage-<from>-<to>.<ext>\"`"))),
        (status = 400, description = "A query parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not read billing data, or the tenant is not theirs.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/exports/usage")]
async fn export_usage(
    state: web::Data<AppState>,
    caller: Caller,
    question: Query<QuestionParams>,
    shape: Query<ExportParams>,
) -> Result<HttpResponse> {
    let question = question.0.question(
        &caller.principal,
        Permission::ReadBilling,
        &state.settings.retention,
    )?;
    let ExportParams {
        format,
        level,
        granularity,
    } = shape.0;
    let request = ExportRequest {
        granularity: granularity.unwrap_or_else(|| question.window.auto_granularity()),
        question,
        level: level.unwrap_or_default(),
        format: format.unwrap_or_default(),
    };
    let export = export::start(&state.db, request).await?;
    let disposition = format!("attachment; filename=\"{}\"", export.file_name());
    let content_type = export.content_type();
    let body = export
        .into_stream()
        .map_ok(|chunk| web::Bytes::from(chunk.bytes));
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .streaming(body))
}
