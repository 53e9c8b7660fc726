//! The spool's appending thread: writes events to the open segment, flushes whenever its
//! queue is empty (so a process crash loses nothing handed over), syncs to disk at most once
//! a second and on rotation, and closes segments past [`SEGMENT_MAX_EVENTS`].

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use super::{Cmd, segment};
use crate::metering::{UsageEvent, metrics};

/// Events per segment: bounds what one replay step reads into memory.
const SEGMENT_MAX_EVENTS: usize = 50_000;
const SYNC_EVERY: Duration = Duration::from_secs(1);

struct Open {
    path: PathBuf,
    out: BufWriter<File>,
    events: usize,
}

pub(super) struct Appender {
    dir: PathBuf,
    pending: Arc<AtomicBool>,
    /// Events sent and not yet written: this thread takes off what it wrote (or lost).
    queued: Arc<AtomicUsize>,
    open: Option<Open>,
    synced_at: Instant,
    // Held for the life of the thread: the directory's lock.
    _lock: File,
}

impl Appender {
    pub(super) fn new(
        dir: PathBuf,
        pending: Arc<AtomicBool>,
        queued: Arc<AtomicUsize>,
        lock: File,
    ) -> Self {
        Self {
            dir,
            pending,
            queued,
            open: None,
            synced_at: Instant::now(),
            _lock: lock,
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(cmd) = rx.recv() {
            if !self.handle(cmd) {
                return;
            }
            while let Ok(cmd) = rx.try_recv() {
                if !self.handle(cmd) {
                    return;
                }
            }
            self.flush();
        }
        // Every handle is gone: close what is open so the next start replays it.
        self.close_open();
    }

    /// Returns `false` when the thread must stop.
    fn handle(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Append(events) => {
                self.append(&events);
                let left = self.queued.fetch_sub(events.len(), Ordering::Relaxed) - events.len();
                metrics::spool_queue(left);
            }
            Cmd::Rotate(ack) => {
                self.close_open();
                let _ = ack.send(());
            }
            Cmd::Close(ack) => {
                self.close_open();
                let _ = ack.send(());
                return false;
            }
        }
        true
    }

    fn append(&mut self, events: &[UsageEvent]) {
        match self.write(events) {
            Ok(()) => {
                metrics::spooled(events.len());
                self.pending.store(true, Ordering::Release);
            }
            Err(err) => {
                metrics::dropped(events.len());
                tracing::error!(count = events.len(), error = %err, "usage events lost: the spool could not write them");
                // Whatever the failed write left behind is cut off from what follows.
                self.close_open();
            }
        }
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.events >= SEGMENT_MAX_EVENTS)
        {
            self.close_open();
        }
    }

    fn write(&mut self, events: &[UsageEvent]) -> io::Result<()> {
        let open = match &mut self.open {
            Some(open) => open,
            None => self.open.insert(start(&self.dir)?),
        };
        for event in events {
            segment::write_event(&mut open.out, event)?;
            open.events += 1;
        }
        Ok(())
    }

    fn flush(&mut self) {
        let Some(open) = &mut self.open else { return };
        let mut result = open.out.flush();
        if result.is_ok() && self.synced_at.elapsed() >= SYNC_EVERY {
            result = open.out.get_ref().sync_data();
            self.synced_at = Instant::now();
        }
        if let Err(err) = result {
            tracing::error!(error = %err, "flushing the spool failed");
        }
    }

    /// Flushes, syncs and renames the open segment to a closed one.
    fn close_open(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        let closed = open.path.with_extension(segment::CLOSED);
        let result = open
            .out
            .flush()
            .and_then(|()| open.out.get_ref().sync_data())
            .and_then(|()| std::fs::rename(&open.path, &closed))
            .and_then(|()| File::open(&self.dir)?.sync_all());
        if let Err(err) = result {
            tracing::error!(segment = %open.path.display(), error = %err, "closing a spool segment failed");
        }
    }
}

fn start(dir: &std::path::Path) -> io::Result<Open> {
    let path = segment::new_path(dir);
    let file = File::options().create_new(true).append(true).open(&path)?;
    Ok(Open {
        path,
        out: BufWriter::with_capacity(256 * 1024, file),
        events: 0,
    })
}
