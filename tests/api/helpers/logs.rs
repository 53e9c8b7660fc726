//! Log capture for the whole test run: every line the test process logs (JSON, `tollgate` at
//! `debug`, everything else at `info`) is appended to one in-memory buffer, so a test can
//! assert that no secret ever reached the log. `TEST_LOG=1` also echoes the lines to stdout.

use std::{
    io::{self, Write},
    sync::{Mutex, PoisonError},
};

use tollgate::{
    config::{LogFormat, Settings},
    telemetry,
};
use tracing_subscriber::fmt::{MakeWriter, writer::MakeWriterExt};

/// The filter the test run logs at (`RUST_LOG`, when set, replaces it).
const LEVEL: &str = "tollgate=debug,info";

/// Everything logged so far by any test in this process.
static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Installs the process-wide subscriber writing into [`CAPTURED`] (and stdout under
/// `TEST_LOG=1`). Called once, through `spawn.rs`'s `TRACING`.
pub(super) fn init() {
    let mut settings = Settings::load(None).expect("default settings load");
    settings.log.level = LEVEL.to_owned();
    settings.log.format = LogFormat::Json;
    if std::env::var("TEST_LOG").is_ok() {
        telemetry::init_tracing(&settings.log, Capture.and(io::stdout));
    } else {
        telemetry::init_tracing(&settings.log, Capture);
    }
}

/// A `MakeWriter` whose writers append to [`CAPTURED`]. The fmt layer writes each event with
/// one `write_all`, so lines from concurrent tests never interleave.
#[derive(Clone, Copy, Debug)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        Capture
    }
}

// A test that panicked elsewhere must not hide the log from the others.
fn lock() -> std::sync::MutexGuard<'static, Vec<u8>> {
    CAPTURED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every log line captured so far in this test process (all tests, not only the caller's).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&lock()).into_owned()
}

/// Panics when any of `needles` occurs in the captured logs, naming the needle by its first
/// six characters (never in full) and showing the offending line with every needle masked.
pub fn assert_logs_free_of(needles: &[&str]) {
    let logs = captured_logs();
    for (index, needle) in needles.iter().enumerate() {
        assert!(!needle.is_empty(), "needle #{index} is empty");
        if let Some(line) = logs.lines().find(|line| line.contains(needle)) {
            panic!(
                "the logs contain needle #{index} (`{}…`, {} chars) in this line:\n{}",
                needle.chars().take(6).collect::<String>(),
                needle.chars().count(),
                masked(line, needles),
            );
        }
    }
}

/// `line` with each needle replaced by `[needle #i]`, cut to 1,000 characters.
fn masked(line: &str, needles: &[&str]) -> String {
    let mut order: Vec<(usize, &str)> = needles.iter().copied().enumerate().collect();
    // Longest first, so a needle that contains another is masked whole.
    order.sort_by_key(|(_, needle)| std::cmp::Reverse(needle.len()));
    let mut line = line.to_owned();
    for (index, needle) in order {
        line = line.replace(needle, &format!("[needle #{index}]"));
    }
    line.chars().take(1000).collect()
}
