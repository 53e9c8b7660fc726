//! Logging (JSON, or pretty on a terminal), the Prometheus recorder, and the middleware that
//! records `http_server_request_duration_seconds` per route template.

use std::{
    io::IsTerminal,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use actix_web::{
    Error as ActixError, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::{Level, Span};
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::{
    EnvFilter, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::{
    config::{LogFormat, LogSettings},
    http::KnownRoutes,
    metering::metrics::{COMPACTION_PASS, FLUSH_DURATION},
};

pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";

/// How often the recorder folds the histograms' recorded samples into their buckets. Until
/// then every sample is kept, one per call: without upkeep, a server nobody scrapes grows with
/// every request for ever (5.5 MB after 169k requests in a heap profile, ~33 bytes each).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The name of the thread that runs the recorder's upkeep (Linux keeps 15 bytes of it).
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// Installs the global subscriber once; later calls (tests) are no-ops. `RUST_LOG` overrides
/// the configured level.
pub fn init_tracing<W>(settings: &LogSettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(writer);
        registry.with(layer).try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .try_init()
    };
    // A subscriber set earlier in the process (another test) is fine.
    drop(result);
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &buckets)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(FLUSH_DURATION.to_owned()), &buckets)
            })
            .and_then(|b| {
                // A pass over a backlog of pending rollups may take a minute.
                let pass = [buckets.as_slice(), &[30.0, 60.0, 120.0]].concat();
                b.set_buckets_for_metric(Matcher::Full(COMPACTION_PASS.to_owned()), &pass)
            })
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when a recorder is already installed, which OnceLock rules out.
        let _ = metrics::set_global_recorder(recorder);
        let upkept = handle.clone();
        std::thread::Builder::new()
            .name(UPKEEP_THREAD.to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkept.run_upkeep();
                }
            })
            .expect("the metrics upkeep thread starts");
        metrics::describe_histogram!(
            HTTP_DURATION,
            metrics::Unit::Seconds,
            "Duration of HTTP server requests, by route template, method and status."
        );
        handle
    })
}

/// The matched route template of a request (`unmatched` when none), found once by
/// [`record_request_metrics`] and kept in the request's extensions for the usage event:
/// matching a path against the route table is one of the dearer steps of a request.
#[derive(Clone)]
pub struct RoutePattern(pub Arc<str>);

/// Records the duration of every request, labelled by the matched route template (never the
/// raw path, so ids do not explode the label space). Unmatched requests share one label.
pub async fn record_request_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, ActixError> {
    let started = Instant::now();
    let known = req.app_data::<web::Data<KnownRoutes>>();
    let route = known
        .and_then(|k| k.fixed_template(req.path()))
        .unwrap_or_else(|| matched_route(&req));
    req.extensions_mut().insert(RoutePattern(route.clone()));
    let method = method_label(req.method().as_str());
    let response = next.call(req).await?;
    let status = response.status().as_u16();
    record_duration((route, method, status), started.elapsed().as_secs_f64());
    Ok(response)
}

/// The method label: one of the standard methods, or `_OTHER` (OpenTelemetry's convention),
/// so arbitrary method tokens sent by clients cannot grow the label space.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("_OTHER")
}

type HistogramKey = (Arc<str>, &'static str, u16);

thread_local! {
    /// This worker's [`HTTP_DURATION`] handles: building a labelled key and finding it in the
    /// registry costs a request more than recording does. Bounded like the label space
    /// (route templates × methods × status codes).
    static HISTOGRAMS: std::cell::RefCell<std::collections::HashMap<HistogramKey, metrics::Histogram>> =
        Default::default();
}

/// Records `seconds` in the [`HTTP_DURATION`] histogram of one route, method and status.
fn record_duration(key: HistogramKey, seconds: f64) {
    HISTOGRAMS.with_borrow_mut(|known| {
        known
            .entry(key)
            .or_insert_with_key(|(route, method, status)| {
                // A handle taken before the recorder exists would stay a no-op.
                metrics_handle();
                metrics::histogram!(
                    HTTP_DURATION,
                    "http_route" => route.clone(),
                    "http_request_method" => *method,
                    "http_response_status_code" => status.to_string(),
                )
            })
            .record(seconds)
    })
}

/// The route template actix matched for `req` (walks the route table), or `unmatched`.
pub fn matched_route(req: &ServiceRequest) -> Arc<str> {
    req.match_pattern()
        .map_or_else(|| Arc::from("unmatched"), Arc::from)
}

/// The root span of each request: `tracing-actix-web`'s, built only when its level (info) is
/// enabled. Its fields (route template, connection info, user agent) are computed eagerly,
/// which costs a loaded server a few per cent of its CPU for a span nobody records.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        if tracing::enabled!(Level::INFO) {
            tracing_actix_web::root_span!(request)
        } else {
            Span::none()
        }
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, ActixError>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upkeep thread starts with the recorder, whether or not anyone scrapes `/metrics`
    /// (what is checked here is that thread; the upkeep itself is the exporter's `run_upkeep`).
    #[test]
    fn the_recorder_is_kept_up_without_scrapes() {
        metrics_handle();
        let names = || -> Vec<String> {
            let threads = std::fs::read_dir("/proc/self/task").expect("procfs");
            threads
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread names itself once it runs, a moment after it was spawned.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !names().iter().any(|name| name == UPKEEP_THREAD) {
            assert!(
                Instant::now() < deadline,
                "no {UPKEEP_THREAD} thread among {:?}",
                names()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
