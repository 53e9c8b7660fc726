//! `[gateway]`: the reverse proxy's timeouts and routes (`[[gateway.routes]]`), checked at
//! load so a route that could shadow Tollgate's own API or point nowhere never starts.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check_url, positive};

/// Path prefixes Tollgate serves itself; a gateway route may neither equal, contain nor sit
/// inside one of them.
pub const RESERVED_PREFIXES: [&str; 7] = [
    "/v1",
    "/docs",
    "/livez",
    "/readyz",
    "/healthz",
    "/metrics",
    "/openapi.json",
];

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct GatewaySettings {
    /// Longest wait, in milliseconds, for the upstream to make progress: to take the next
    /// chunk of the request body, to answer once the body is sent, or to send the next chunk
    /// of its answer.
    pub upstream_timeout_ms: u64,
    /// Longest wait, in milliseconds, for a TCP (and TLS) connection to an upstream; the
    /// connection counts towards `upstream_timeout_ms` too.
    pub connect_timeout_ms: u64,
    #[serde(default)]
    pub routes: Vec<GatewayRoute>,
}

/// One `[[gateway.routes]]` entry: calls under `prefix` go to `upstream`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    /// Path prefix, matched on a segment boundary (`/gw/render` takes `/gw/render` and
    /// `/gw/render/…`, not `/gw/renderer`).
    pub prefix: String,
    /// `http(s)://host[:port][/path]`; with `strip_prefix` its path replaces the prefix.
    pub upstream: String,
    /// Endpoint recorded in usage events; default `<prefix>/*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Remove the prefix before appending the rest of the path to the upstream's path.
    #[serde(default = "strip_by_default")]
    pub strip_prefix: bool,
}

fn strip_by_default() -> bool {
    true
}

impl GatewayRoute {
    /// The endpoint recorded in this route's usage events.
    pub fn template(&self) -> String {
        self.template
            .clone()
            .unwrap_or_else(|| format!("{}/*", self.prefix))
    }
}

impl GatewaySettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("gateway.upstream_timeout_ms", self.upstream_timeout_ms)?;
        positive("gateway.connect_timeout_ms", self.connect_timeout_ms)?;
        for (i, route) in self.routes.iter().enumerate() {
            let setting = |field: &str| format!("gateway.routes[{i}].{field}");
            check_prefix(&setting("prefix"), &route.prefix)?;
            if let Some(earlier) = self.routes[..i]
                .iter()
                .position(|r| r.prefix == route.prefix)
            {
                return Err(ConfigError::new(
                    setting("prefix"),
                    format!(
                        "`{}` is already the prefix of route {earlier}",
                        route.prefix
                    ),
                ));
            }
            check_upstream(&setting("upstream"), &route.upstream)?;
            if let Some(template) = &route.template
                && (!template.starts_with('/') || template.chars().any(char::is_control))
            {
                return Err(ConfigError::new(
                    setting("template"),
                    "must start with `/` and hold no control characters",
                ));
            }
        }
        Ok(())
    }
}

fn check_prefix(setting: &str, prefix: &str) -> Result<(), ConfigError> {
    let segments = prefix.strip_prefix('/').map(|rest| rest.split('/'));
    let valid_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !segments.is_some_and(|mut segments| segments.all(valid_segment)) {
        return Err(ConfigError::new(
            setting,
            format!(
                "`{prefix}` must be `/` followed by path segments of letters, digits, `-`, `.`, \
                 `_` and `~` (no trailing `/`)"
            ),
        ));
    }
    let within = |outer: &str, inner: &str| {
        inner == outer || (inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/')
    };
    if let Some(own) = RESERVED_PREFIXES
        .iter()
        .find(|own| within(own, prefix) || within(prefix, own))
    {
        return Err(ConfigError::new(
            setting,
            format!("`{prefix}` overlaps Tollgate's own `{own}`"),
        ));
    }
    Ok(())
}

fn check_upstream(setting: &str, upstream: &str) -> Result<(), ConfigError> {
    check_url(setting, upstream, &["http", "https"])?;
    let url = url::Url::parse(upstream).map_err(|err| ConfigError::new(setting, err))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            setting,
            "must not hold credentials (callers' own `Authorization` is passed through)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            setting,
            "must not have a query or a fragment",
        ));
    }
    Ok(())
}
