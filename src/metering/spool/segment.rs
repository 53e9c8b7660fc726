//! The on-disk format of the spool: segments of JSON lines, one event per line, named by a
//! UUIDv7 so they sort by creation. The line format is independent of [`UsageEvent`]'s layout
//! and versioned by its fields: a segment written by one release is read by the next.

use std::{
    borrow::Cow,
    fs::File,
    io::{self, BufRead, BufReader, Write},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    ids::{KeyId, TenantId},
    metering::{Source, UsageEvent},
};

/// A closed segment, ready to replay.
pub const CLOSED: &str = "jsonl";
/// The segment being appended to; renamed to [`CLOSED`] when full, rotated or at exit.
pub const OPEN: &str = "open";

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    tenant_id: TenantId,
    key_id: Option<KeyId>,
    #[serde(borrow)]
    endpoint: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    status_code: u16,
    latency_us: i64,
    bytes_in: i64,
    bytes_out: i64,
    tokens_in: i64,
    tokens_out: i64,
    cost_nanos: i64,
    ip: Option<IpAddr>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    /// Absent from segments written before utilization was recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    utilization: [u16; 4],
}

fn is_zero(u: &[u16; 4]) -> bool {
    *u == [0; 4]
}

/// A fresh segment path in `dir` with the given extension.
pub fn new_path(dir: &Path) -> PathBuf {
    dir.join(format!("{}.{OPEN}", Uuid::now_v7().simple()))
}

/// Appends one event as one line.
pub fn write_event(out: &mut impl Write, e: &UsageEvent) -> io::Result<()> {
    let line = Line {
        id: e.id,
        occurred_at: e.occurred_at,
        received_at: e.received_at,
        tenant_id: e.tenant_id,
        key_id: e.key_id,
        endpoint: Cow::Borrowed(&e.endpoint),
        method: Cow::Borrowed(&e.method),
        status_code: e.status_code,
        latency_us: e.latency_us,
        bytes_in: e.bytes_in,
        bytes_out: e.bytes_out,
        tokens_in: e.tokens_in,
        tokens_out: e.tokens_out,
        cost_nanos: e.cost_nanos,
        ip: e.ip,
        user_agent: e.user_agent.as_deref().map(Cow::Borrowed),
        source: Cow::Borrowed(e.source.as_str()),
        utilization: e.utilization,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// A closed segment, read a batch at a time: replaying a segment holds one batch of its
/// events in memory, not all of them.
pub struct Reader {
    lines: io::Split<BufReader<File>>,
    /// Lines that could not be read so far (a line cut short by a crash; nothing else writes
    /// these files).
    pub unreadable: usize,
}

impl Reader {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            lines: BufReader::new(File::open(path)?).split(b'\n'),
            unreadable: 0,
        })
    }

    /// The next events, up to and including the one for which `full` (told of each event in
    /// turn) says the batch is full; empty at the end of the segment.
    pub fn next_batch(
        &mut self,
        mut full: impl FnMut(&UsageEvent) -> bool,
    ) -> io::Result<Vec<UsageEvent>> {
        let mut events = Vec::new();
        for line in self.lines.by_ref() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Line>(&line)
                .ok()
                .and_then(to_event)
            {
                Some(event) => {
                    let last = full(&event);
                    events.push(event);
                    if last {
                        break;
                    }
                }
                None => self.unreadable += 1,
            }
        }
        Ok(events)
    }
}

fn to_event(line: Line<'_>) -> Option<UsageEvent> {
    Some(UsageEvent {
        id: line.id,
        occurred_at: line.occurred_at,
        received_at: line.received_at,
        tenant_id: line.tenant_id,
        key_id: line.key_id,
        endpoint: Arc::from(line.endpoint.as_ref()),
        method: crate::metering::event::method(&line.method),
        status_code: line.status_code,
        latency_us: line.latency_us,
        bytes_in: line.bytes_in,
        bytes_out: line.bytes_out,
        tokens_in: line.tokens_in,
        tokens_out: line.tokens_out,
        cost_nanos: line.cost_nanos,
        ip: line.ip,
        user_agent: line.user_agent.map(|agent| Arc::from(agent.as_ref())),
        source: Source::parse(&line.source)?,
        utilization: line.utilization,
    })
}

/// Closed segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = with_extension(dir, CLOSED)?;
    found.sort();
    Ok(found)
}

/// Files in `dir` whose extension is `ext`.
pub fn with_extension(dir: &Path, ext: &str) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) {
            found.push(path);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_a_cut_line_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut event = UsageEvent::new(
            Source::Gateway,
            TenantId::new(),
            Some(KeyId::new()),
            Arc::from("/v1/things/{id}"),
            Arc::from("PATCH"),
            201,
        );
        event.user_agent = Some(Arc::from("curl/8 \"quoted\"\n"));
        event.ip = Some("::1".parse().unwrap());
        event.cost_nanos = 1_200_000;
        let path = dir.path().join("a.jsonl");
        let mut out = Vec::new();
        write_event(&mut out, &event).unwrap();
        write_event(&mut out, &event).unwrap();
        out.truncate(out.len() - 10);
        std::fs::write(&path, out).unwrap();
        let mut reader = Reader::open(&path).unwrap();
        assert_eq!(reader.next_batch(|_| false).unwrap(), vec![event]);
        assert_eq!(reader.unreadable, 1);
        assert!(reader.next_batch(|_| false).unwrap().is_empty());
    }

    #[test]
    fn a_segment_is_read_a_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<UsageEvent> = (0..5)
            .map(|status| {
                UsageEvent::new(
                    Source::Middleware,
                    TenantId::new(),
                    None,
                    Arc::from("/v1/ping"),
                    Arc::from("GET"),
                    200 + status,
                )
            })
            .collect();
        let mut out = Vec::new();
        for event in &events {
            write_event(&mut out, event).unwrap();
        }
        let path = dir.path().join("b.jsonl");
        std::fs::write(&path, out).unwrap();
        let mut reader = Reader::open(&path).unwrap();
        let mut seen = 0;
        let mut twos = || {
            seen += 1;
            seen % 2 == 0
        };
        assert_eq!(reader.next_batch(|_| twos()).unwrap(), events[0..2]);
        assert_eq!(reader.next_batch(|_| twos()).unwrap(), events[2..4]);
        assert_eq!(reader.next_batch(|_| twos()).unwrap(), events[4..]);
        assert!(reader.next_batch(|_| twos()).unwrap().is_empty());
        assert_eq!(reader.unreadable, 0);
    }
}
