//! Rate-limit response headers and the 429 refusal, from a limiter [`Decision`]:
//! `X-RateLimit-{Minute,Hour,Day}-{Limit,Remaining,Reset}` (Reset = seconds until remaining
//! next grows), the IETF draft-11 `RateLimit-Policy` / `RateLimit` pair (month included when
//! the key has a quota), and on refusal `Retry-After` with the quota-exceeded problem.

use actix_web::{
    HttpResponse,
    http::header::{HeaderMap, HeaderName, HeaderValue},
    web::BytesMut,
};
use serde::Serialize;

use crate::limits::{Decision, month::MonthSpan};

const X_HEADERS: [[HeaderName; 3]; 3] = [
    [
        HeaderName::from_static("x-ratelimit-minute-limit"),
        HeaderName::from_static("x-ratelimit-minute-remaining"),
        HeaderName::from_static("x-ratelimit-minute-reset"),
    ],
    [
        HeaderName::from_static("x-ratelimit-hour-limit"),
        HeaderName::from_static("x-ratelimit-hour-remaining"),
        HeaderName::from_static("x-ratelimit-hour-reset"),
    ],
    [
        HeaderName::from_static("x-ratelimit-day-limit"),
        HeaderName::from_static("x-ratelimit-day-remaining"),
        HeaderName::from_static("x-ratelimit-day-reset"),
    ],
];
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const WINDOW_SECS: [u64; 3] = [60, 3600, 86400];

/// Adds every rate-limit header of `decision` to `headers`. Every call served carries these
/// eleven headers, so their values are written into one buffer (no `fmt` machinery) and each
/// header value is a slice of it: one allocation instead of eleven.
pub fn apply(headers: &mut HeaderMap, decision: &Decision, month: &MonthSpan) {
    let mut out = Values::new();
    for (names, w) in X_HEADERS.iter().zip(decision.sliding.iter()) {
        for (name, value) in names.iter().zip([w.limit, w.remaining(), w.reset_secs]) {
            out.number(value);
            out.end(name.clone());
        }
    }
    for (i, (name, w)) in decision.windows().enumerate() {
        let span = WINDOW_SECS
            .get(i)
            .copied()
            .unwrap_or((month.end_ms - month.start_ms) / 1000);
        out.item(i, name, [("q", w.limit), ("w", span)]);
    }
    out.end(RATELIMIT_POLICY);
    for (i, (name, w)) in decision.windows().enumerate() {
        out.item(i, name, [("r", w.remaining()), ("t", w.reset_secs)]);
    }
    out.end(RATELIMIT);
    out.insert_into(headers);
}

/// The values of [`apply`]'s headers, written one after another into one buffer.
struct Values {
    buf: BytesMut,
    /// Each header and where its value ends in `buf` (it starts where the previous one ends).
    ends: Vec<(HeaderName, usize)>,
}

impl Values {
    /// Room for the eleven values of common limits (~200 bytes), so the buffer is allocated
    /// once; the largest limits take one more allocation.
    fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(320),
            ends: Vec::with_capacity(11),
        }
    }

    fn number(&mut self, n: u64) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    /// `"name";a=1;b=2` of a structured-field list, `, `-separated after the first item.
    fn item(&mut self, index: usize, name: &str, params: [(&str, u64); 2]) {
        if index > 0 {
            self.buf.extend_from_slice(b", ");
        }
        self.buf.extend_from_slice(b"\"");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\"");
        for (key, value) in params {
            self.buf.extend_from_slice(b";");
            self.buf.extend_from_slice(key.as_bytes());
            self.buf.extend_from_slice(b"=");
            self.number(value);
        }
    }

    /// Ends the current value: it belongs to `name`.
    fn end(&mut self, name: HeaderName) {
        self.ends.push((name, self.buf.len()));
    }

    fn insert_into(self, headers: &mut HeaderMap) {
        headers.reserve(self.ends.len());
        let buf = self.buf.freeze();
        let mut start = 0;
        for (name, end) in self.ends {
            // Digits, quotes, letters and `;=, `: always a valid header value.
            if let Ok(value) = HeaderValue::from_maybe_shared(buf.slice(start..end)) {
                headers.insert(name, value);
            }
            start = end;
        }
    }
}

/// The RFC 9457 body of a refusal (quota-exceeded problem type, IETF draft).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuotaExceeded {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// `Rate limit exceeded for minute. Try again in N seconds` (hour, day, month likewise).
    pub detail: String,
    /// Always `rate_limited`.
    pub code: &'static str,
    /// The windows that refused the call.
    #[serde(rename = "violated-policies")]
    pub violated_policies: Vec<&'static str>,
}

/// 429 with `Retry-After`, the rate-limit headers and the quota-exceeded problem, or `None`
/// when the decision admits the call.
pub fn refusal(decision: &Decision, month: &MonthSpan) -> Option<HttpResponse> {
    let (window, retry_after) = decision.blocking()?;
    let body = QuotaExceeded {
        type_: "https://iana.org/assignments/http-problem-types#quota-exceeded",
        title: "Request cannot be satisfied as assigned quota has been exceeded",
        status: 429,
        detail: format!("Rate limit exceeded for {window}. Try again in {retry_after} seconds"),
        code: "rate_limited",
        violated_policies: decision
            .windows()
            .filter(|(_, w)| w.exceeded())
            .map(|(n, _)| n)
            .collect(),
    };
    let mut response = HttpResponse::TooManyRequests()
        .insert_header(("Retry-After", retry_after))
        .content_type(super::problem::PROBLEM_JSON)
        .json(body);
    apply(response.headers_mut(), decision, month);
    Some(response)
}
