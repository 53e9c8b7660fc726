//! PostgreSQL binary `COPY` encoding of usage events (header, one tuple per event in the
//! order of [`super::COLUMNS`], trailer). Binary needs no escaping and no text parsing on the
//! server, which is what makes `COPY` the fast path.

use chrono::{DateTime, Utc};

use crate::metering::UsageEvent;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// The whole `COPY … FROM STDIN (FORMAT binary)` payload for `events`.
pub fn encode(events: &[UsageEvent]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(19 + events.len() * 256 + 2);
    buf.extend_from_slice(SIGNATURE);
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for event in events {
        tuple(&mut buf, event);
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    buf
}

fn tuple(buf: &mut Vec<u8>, e: &UsageEvent) {
    buf.extend_from_slice(&(super::COLUMNS.len() as i16).to_be_bytes());
    field(buf, e.id.as_bytes());
    timestamp(buf, e.occurred_at);
    field(buf, e.tenant_id.0.as_bytes());
    match e.key_id {
        Some(key) => field(buf, key.0.as_bytes()),
        None => null(buf),
    }
    field(buf, e.endpoint.as_bytes());
    field(buf, e.method.as_bytes());
    field(buf, &(e.status_code as i16).to_be_bytes());
    for value in [
        e.latency_us,
        e.bytes_in,
        e.bytes_out,
        e.tokens_in,
        e.tokens_out,
        e.cost_nanos,
    ] {
        field(buf, &value.to_be_bytes());
    }
    match e.ip {
        Some(ip) => field(buf, ip.to_string().as_bytes()),
        None => null(buf),
    }
    match &e.user_agent {
        Some(agent) => field(buf, agent.as_bytes()),
        None => null(buf),
    }
    field(buf, e.source.as_str().as_bytes());
    timestamp(buf, e.received_at);
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

fn timestamp(buf: &mut Vec<u8>, at: DateTime<Utc>) {
    field(
        buf,
        &(at.timestamp_micros() - PG_EPOCH_OFFSET_US).to_be_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{ids::TenantId, metering::Source};

    #[test]
    fn the_payload_has_header_tuples_and_trailer() {
        let event = UsageEvent::new(
            Source::Ingest,
            TenantId::new(),
            None,
            Arc::from("/x"),
            Arc::from("GET"),
            200,
        );
        let bytes = encode(&[event.clone(), event]);
        assert!(bytes.starts_with(SIGNATURE));
        assert_eq!(&bytes[bytes.len() - 2..], &[0xff, 0xff]);
        assert_eq!(&bytes[19..21], &17i16.to_be_bytes());
    }

    #[test]
    fn timestamps_count_from_the_postgres_epoch() {
        let mut buf = Vec::new();
        timestamp(&mut buf, "2000-01-01T00:00:01Z".parse().unwrap());
        assert_eq!(
            buf,
            [&8i32.to_be_bytes()[..], &1_000_000i64.to_be_bytes()].concat()
        );
    }
}
