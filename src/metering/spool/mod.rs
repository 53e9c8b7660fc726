//! The spool: where events go when the in-memory buffer is full or the database refuses
//! them. Appends happen on a dedicated thread (the caller only sends on a channel, so the
//! request path and the async executor never wait for the disk); the writer replays closed
//! segments once the database accepts writes and deletes a segment only after its events are
//! committed. The directory is locked: one process per spool directory.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
};

use anyhow::Context;
use tokio::sync::oneshot;

use super::{UsageEvent, metrics};

pub mod segment;
mod thread;

enum Cmd {
    Append(Vec<UsageEvent>),
    /// Close the open segment (so it can be replayed), then answer.
    Rotate(oneshot::Sender<()>),
    /// Close the open segment, release the lock and stop.
    Close(oneshot::Sender<()>),
}

/// A handle on the spool; clones share the same thread and directory.
#[derive(Clone)]
pub struct Spool {
    tx: mpsc::Sender<Cmd>,
    /// Something was appended since the writer last took the closed segments.
    pending: Arc<AtomicBool>,
    /// Events sent to the thread and not yet written ([`metrics::SPOOL_QUEUE`]).
    queued: Arc<AtomicUsize>,
    dir: PathBuf,
}

impl Spool {
    /// Locks `dir` (creating it), turns segments left open by a crash into closed ones and
    /// starts the appending thread.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the spool directory {}", dir.display()))?;
        let lock = lock(dir)?;
        for open in segment::with_extension(dir, segment::OPEN)? {
            std::fs::rename(&open, open.with_extension(segment::CLOSED))
                .with_context(|| format!("closing the spool segment {}", open.display()))?;
        }
        let leftovers = !segment::list(dir)?.is_empty();
        if leftovers {
            tracing::warn!(dir = %dir.display(), "the spool holds events from an earlier run; replaying them");
        }
        let pending = Arc::new(AtomicBool::new(leftovers));
        let queued = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let worker =
            thread::Appender::new(dir.to_path_buf(), pending.clone(), queued.clone(), lock);
        std::thread::Builder::new()
            .name("tollgate-spool".into())
            .spawn(move || worker.run(rx))
            .context("starting the spool thread")?;
        Ok(Self {
            tx,
            pending,
            queued,
            dir: dir.to_path_buf(),
        })
    }

    /// Hands events to the appending thread; never blocks. Counted as dropped only if the
    /// thread is gone (after [`Spool::close`]).
    pub fn append(&self, events: Vec<UsageEvent>) {
        let count = events.len();
        if count == 0 {
            return;
        }
        self.queued.fetch_add(count, Ordering::Relaxed);
        if self.tx.send(Cmd::Append(events)).is_err() {
            self.queued.fetch_sub(count, Ordering::Relaxed);
            metrics::dropped(count);
            tracing::error!(count, "usage events lost: the spool is closed");
        }
    }

    /// Takes the "something to replay" flag (the writer puts it back if a replay fails).
    pub fn take_pending(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }

    pub fn mark_pending(&self) {
        self.pending.store(true, Ordering::Release);
    }

    pub fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Closes the segment being appended to, so every event spooled so far is in a closed
    /// segment that [`Spool::segments`] lists.
    pub async fn rotate(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Cmd::Rotate(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Flushes and closes everything, releases the directory lock and stops the thread.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Cmd::Close(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Closed segments, oldest first.
    pub async fn segments(&self) -> io::Result<Vec<PathBuf>> {
        let dir = self.dir.clone();
        blocking(move || segment::list(&dir)).await
    }
}

/// Opens a closed segment for replay, off the executor.
pub async fn open_segment(path: PathBuf) -> io::Result<segment::Reader> {
    blocking(move || segment::Reader::open(&path)).await
}

/// The next batch of `reader`'s events, off the executor: up to and including the one that
/// makes `full` say so; empty at the end. Hands the reader back.
pub async fn read_batch(
    mut reader: segment::Reader,
    full: impl FnMut(&UsageEvent) -> bool + Send + 'static,
) -> io::Result<(segment::Reader, Vec<UsageEvent>)> {
    blocking(move || {
        let events = reader.next_batch(full)?;
        Ok((reader, events))
    })
    .await
}

/// Deletes a segment whose events are committed.
pub async fn remove_segment(path: PathBuf) -> io::Result<()> {
    blocking(move || std::fs::remove_file(&path)).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

fn lock(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.try_lock().map_err(|err| {
        anyhow::anyhow!(
            "the spool directory {} is in use by another process ({err}); give each process \
             its own `metering.spool_dir`",
            dir.display()
        )
    })?;
    Ok(file)
}
