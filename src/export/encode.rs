//! Turning rows into bytes. A row is a list of [`Cell`]s in the level's column order; the
//! [`Encoder`] writes them as RFC 4180 CSV (CRLF, quoted when needed, user-controlled text
//! guarded against formula injection) or as the objects of one JSON array.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};

use super::Format;
use crate::{Error, Result};

/// One value of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    /// Text we produce (ids, timestamps, names of our own): written as is.
    Text(Cow<'a, str>),
    /// Text a client controls (endpoints, methods, key names, user agents): a JSON string,
    /// and in CSV guarded by [`csv_safe`].
    UserText(&'a str),
    Int(i64),
    /// An exact decimal such as `12.5`: a JSON number.
    Decimal(String),
    /// Money as an exact decimal (`0.000001500`): a JSON string, so no reader turns it into
    /// a float.
    Money(String),
    /// Empty in CSV, `null` in JSON.
    Null,
}

/// Encodes the rows of one export, page by page.
pub struct Encoder {
    format: Format,
    columns: &'static [&'static str],
    rows: u64,
}

impl Encoder {
    pub fn new(format: Format, columns: &'static [&'static str]) -> Self {
        Self {
            format,
            columns,
            rows: 0,
        }
    }

    /// CSV: the header row; JSON: the opening bracket.
    pub fn header(&self) -> Result<Vec<u8>> {
        match self.format {
            Format::Csv => csv_lines(std::iter::once(self.columns.iter().copied())),
            Format::Json => Ok(b"[".to_vec()),
        }
    }

    /// The encoded rows of one page.
    pub fn rows<'a, const N: usize>(
        &mut self,
        rows: impl Iterator<Item = [Cell<'a>; N]>,
    ) -> Result<Vec<u8>> {
        debug_assert_eq!(N, self.columns.len());
        match self.format {
            Format::Csv => {
                let mut count = 0;
                let lines = rows.inspect(|_| count += 1).map(|row| row.map(csv_text));
                let bytes = csv_lines(lines)?;
                self.rows += count;
                Ok(bytes)
            }
            Format::Json => {
                let mut out = Vec::with_capacity(64 * 1024);
                for row in rows {
                    out.extend_from_slice(if self.rows == 0 { b"\n" } else { b",\n" });
                    self.json_object(&mut out, &row)?;
                    self.rows += 1;
                }
                Ok(out)
            }
        }
    }

    /// JSON: the closing bracket; CSV: nothing.
    pub fn footer(&self) -> Vec<u8> {
        match (self.format, self.rows) {
            (Format::Csv, _) => Vec::new(),
            (Format::Json, 0) => b"]".to_vec(),
            (Format::Json, _) => b"\n]\n".to_vec(),
        }
    }

    fn json_object(&self, out: &mut Vec<u8>, row: &[Cell<'_>]) -> Result<()> {
        out.push(b'{');
        for (i, (name, cell)) in self.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_string(out, name)?;
            out.push(b':');
            match cell {
                Cell::Text(text) => json_string(out, text)?,
                Cell::UserText(text) => json_string(out, text)?,
                Cell::Money(text) => json_string(out, text)?,
                Cell::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
                // Built by `decimal_millis`: always a valid JSON number.
                Cell::Decimal(text) => out.extend_from_slice(text.as_bytes()),
                Cell::Null => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Ok(())
    }
}

fn json_string(out: &mut Vec<u8>, text: &str) -> Result<()> {
    serde_json::to_writer(out, text).map_err(Error::internal)
}

/// CSV lines (CRLF-terminated, fields quoted when they need it).
fn csv_lines<I, F>(lines: I) -> Result<Vec<u8>>
where
    I: Iterator<Item = F>,
    F: IntoIterator,
    F::Item: AsRef<str>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(64 * 1024));
    for line in lines {
        for field in line {
            writer
                .write_field(field.as_ref())
                .map_err(Error::internal)?;
        }
        writer
            .write_record(None::<&[u8]>)
            .map_err(Error::internal)?;
    }
    writer.into_inner().map_err(Error::internal)
}

fn csv_text(cell: Cell<'_>) -> Cow<'_, str> {
    match cell {
        Cell::Text(text) => text,
        Cell::UserText(text) => csv_safe(text),
        Cell::Int(n) => Cow::Owned(n.to_string()),
        Cell::Decimal(text) | Cell::Money(text) => Cow::Owned(text),
        Cell::Null => Cow::Borrowed(""),
    }
}

/// Text a client controls, made safe to open in a spreadsheet: a cell starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return would be read as a formula, so it gets a
/// leading `'` (OWASP's advice for CSV injection).
pub fn csv_safe(text: &str) -> Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// Nanos as an exact decimal with 9 places: `1500` -> `0.000001500`.
pub fn money(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

/// Microseconds as exact milliseconds without trailing zeros: `12345` -> `12.345`,
/// `12000` -> `12`, `500` -> `0.5`.
pub fn decimal_millis(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let abs = us.unsigned_abs();
    let (whole, fraction) = (abs / 1_000, abs % 1_000);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:03}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// An event's time: UTC, with as many fractional digits as it has (`…T10:00:00.250Z`).
pub fn event_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A bucket's start: UTC, whole seconds (`…T10:00:00Z`).
pub fn bucket_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn money_and_millis_are_exact_decimals() {
        assert_eq!(money(1_500), "0.000001500");
        assert_eq!(money(12_000_000_001), "12.000000001");
        assert_eq!(money(0), "0.000000000");
        assert_eq!(money(-1_500), "-0.000001500");
        assert_eq!(money(i64::MIN), "-9223372036.854775808");
        assert_eq!(decimal_millis(12_345), "12.345");
        assert_eq!(decimal_millis(12_000), "12");
        assert_eq!(decimal_millis(500), "0.5");
        assert_eq!(decimal_millis(7), "0.007");
        assert_eq!(decimal_millis(0), "0");
    }

    #[test]
    fn formula_starts_are_quoted_and_the_rest_left_alone() {
        for text in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_safe(text), format!("'{text}"));
        }
        for text in ["/v1/users/{id}", "GET", "", "a=b", "curl/8.0"] {
            assert_eq!(csv_safe(text), text);
        }
    }

    #[test]
    fn times_are_utc_iso_8601() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        assert_eq!(bucket_time(at), "2026-11-23T10:00:00Z");
        assert_eq!(event_time(at), "2026-11-23T10:00:00Z");
        let later = at + Duration::milliseconds(250);
        assert_eq!(event_time(later), "2026-11-23T10:00:00.250Z");
    }

    #[test]
    fn csv_and_json_write_the_same_cells() {
        const COLUMNS: [&str; 4] = ["name", "n", "cost", "none"];
        let row = || {
            [
                Cell::UserText("=x,\"y\""),
                Cell::Int(3),
                Cell::Money(money(1)),
                Cell::Null,
            ]
        };
        let mut csv = Encoder::new(Format::Csv, &COLUMNS);
        let mut out = csv.header().unwrap();
        out.extend(csv.rows([row()].into_iter()).unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "name,n,cost,none\r\n\"'=x,\"\"y\"\"\",3,0.000000001,\r\n"
        );
        let mut json = Encoder::new(Format::Json, &COLUMNS);
        let mut out = json.header().unwrap();
        out.extend(json.rows([row(), row()].into_iter()).unwrap());
        out.extend(json.footer());
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let one =
            serde_json::json!({"name": "=x,\"y\"", "n": 3, "cost": "0.000000001", "none": null});
        assert_eq!(parsed, serde_json::json!([one, one]));
        let empty = Encoder::new(Format::Json, &COLUMNS);
        assert_eq!([empty.header().unwrap(), empty.footer()].concat(), b"[]");
    }
}
