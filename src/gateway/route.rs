//! One configured route: which paths it takes and the upstream URL of a call. The part of the
//! path after the prefix is forwarded as the client wrote it (percent-encoding kept), with
//! dot segments resolved inside it, so `..` never climbs above the route's upstream path.

use std::sync::Arc;

use url::{Position, Url};

use crate::config::GatewayRoute;

#[derive(Debug)]
pub struct Route {
    /// As configured: `/` and segments, no trailing `/` (validated).
    pub prefix: String,
    /// The endpoint recorded in usage events.
    pub template: Arc<str>,
    segments: usize,
    /// `scheme://host[:port]` of the upstream.
    origin: String,
    /// The upstream's path as configured (`/` at least).
    base_path: String,
    strip_prefix: bool,
}

impl Route {
    pub fn new(settings: &GatewayRoute) -> Result<Self, url::ParseError> {
        let upstream = Url::parse(&settings.upstream)?;
        Ok(Self {
            prefix: settings.prefix.clone(),
            template: Arc::from(settings.template()),
            segments: settings.prefix.matches('/').count(),
            origin: upstream[..Position::BeforePath].to_owned(),
            base_path: upstream.path().to_owned(),
            strip_prefix: settings.strip_prefix,
        })
    }

    /// Whether the prefix is replaced by the upstream's path (else the whole path follows it).
    pub fn strips_prefix(&self) -> bool {
        self.strip_prefix
    }

    /// Whether `path` is the prefix or below it (a segment boundary).
    pub fn takes(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The upstream URL of a call to `raw_path` (the request's path as received, under the
    /// prefix) with `query`.
    pub fn target(&self, raw_path: &str, query: Option<&str>) -> Result<Url, url::ParseError> {
        let (head, tail) = split_after_segments(raw_path, self.segments);
        let tail = resolve_dots(tail);
        let forwarded = match self.strip_prefix {
            true => tail,
            false => format!("{head}{tail}"),
        };
        let mut url = String::with_capacity(self.origin.len() + self.base_path.len() + 64);
        url.push_str(&self.origin);
        if forwarded.is_empty() {
            url.push_str(&self.base_path);
        } else {
            url.push_str(self.base_path.trim_end_matches('/'));
            escape_into(&mut url, &forwarded);
        }
        let mut url = Url::parse(&url)?;
        url.set_query(query);
        Ok(url)
    }
}

/// `raw` cut after its first `n` segments: (`/a/b`, `/c/d`) for `/a/b/c/d` and 2.
fn split_after_segments(raw: &str, n: usize) -> (&str, &str) {
    let mut end = 0;
    for _ in 0..n {
        match raw.get(end + 1..).and_then(|rest| rest.find('/')) {
            Some(i) => end += 1 + i,
            None => return (raw, ""),
        }
    }
    raw.split_at(end)
}

/// RFC 3986 dot-segment removal on a path that is its own root (`/a/../..` is `/`); `%2e` counts
/// as `.`, as URL parsers read it.
fn resolve_dots(tail: &str) -> String {
    let Some(rest) = tail.strip_prefix('/') else {
        return String::new();
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut ends_in_dir = false;
    for segment in rest.split('/') {
        let dots = dots(segment);
        ends_in_dir = dots.is_some();
        match dots {
            Some(1) => {}
            Some(_) => {
                kept.pop();
            }
            None => kept.push(segment),
        }
    }
    let mut out = String::with_capacity(tail.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if ends_in_dir || out.is_empty() {
        out.push('/');
    }
    out
}

/// 1 for a `.` segment, 2 for `..` (either dot possibly written `%2e`), else `None`.
fn dots(segment: &str) -> Option<u8> {
    let rest = segment
        .strip_prefix('.')
        .or_else(|| strip_encoded_dot(segment))?;
    match rest {
        "" => Some(1),
        _ if rest == "." || strip_encoded_dot(rest) == Some("") => Some(2),
        _ => None,
    }
}

fn strip_encoded_dot(s: &str) -> Option<&str> {
    s.get(..3)
        .filter(|head| head.eq_ignore_ascii_case("%2e"))
        .map(|_| &s[3..])
}

/// Appends `path`, percent-encoding every byte that may not appear in a URL path as is (a
/// backslash would otherwise be read as `/`).
fn escape_into(out: &mut String, path: &str) {
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str, strip_prefix: bool) -> Route {
        Route::new(&GatewayRoute {
            prefix: prefix.into(),
            upstream: upstream.into(),
            template: None,
            strip_prefix,
        })
        .unwrap()
    }

    fn target(route: &Route, path: &str) -> String {
        route.target(path, None).unwrap().to_string()
    }

    #[test]
    fn the_prefix_is_replaced_by_the_upstream_path() {
        let r = route("/gw/render", "http://up:9000/api", true);
        assert_eq!(target(&r, "/gw/render"), "http://up:9000/api");
        assert_eq!(target(&r, "/gw/render/"), "http://up:9000/api/");
        assert_eq!(target(&r, "/gw/render/a/b"), "http://up:9000/api/a/b");
        let r = route("/gw", "http://up/api/", true);
        assert_eq!(target(&r, "/gw"), "http://up/api/");
        assert_eq!(target(&r, "/gw/x"), "http://up/api/x");
        let r = route("/gw", "https://up", true);
        assert_eq!(target(&r, "/gw/x"), "https://up/x");
        assert_eq!(target(&r, "/gw"), "https://up/");
    }

    #[test]
    fn without_stripping_the_whole_path_is_appended() {
        let r = route("/gw/render", "http://up/api", false);
        assert_eq!(target(&r, "/gw/render/a"), "http://up/api/gw/render/a");
        let r = route("/gw", "http://up", false);
        assert_eq!(target(&r, "/gw"), "http://up/gw");
    }

    #[test]
    fn dot_segments_never_climb_above_the_upstream_path() {
        let r = route("/gw", "http://up/api", true);
        assert_eq!(target(&r, "/gw/a/../../../admin"), "http://up/api/admin");
        assert_eq!(target(&r, "/gw/%2e%2E/%2e/admin"), "http://up/api/admin");
        assert_eq!(target(&r, "/gw/a/.."), "http://up/api/");
        assert_eq!(
            target(&r, "/gw/..%5c..%5cadmin"),
            "http://up/api/..%5c..%5cadmin"
        );
        let r = route("/gw", "http://up/api", false);
        assert_eq!(target(&r, "/gw/../../v1/keys"), "http://up/api/gw/v1/keys");
    }

    #[test]
    fn encoding_and_query_are_kept() {
        let r = route("/gw", "http://up/api", true);
        let url = r.target("/gw/a%20b/c%2Fd", Some("q=1&x=%26")).unwrap();
        assert_eq!(url.as_str(), "http://up/api/a%20b/c%2Fd?q=1&x=%26");
        assert_eq!(target(&r, "/gw/a\\b"), "http://up/api/a%5Cb");
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let r = route("/gw/render", "http://up", true);
        assert!(r.takes("/gw/render") && r.takes("/gw/render/") && r.takes("/gw/render/x"));
        assert!(!r.takes("/gw/renderer") && !r.takes("/gw") && !r.takes("/x/gw/render"));
    }
}
