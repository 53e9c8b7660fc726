//! One `tollgate serve` process on a free 127.0.0.1 port, killed when dropped (a failed
//! assertion never leaves a server behind), with its log kept for failure messages.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::cli::tollgate;

/// How long a node may take to answer `/readyz` after it is started.
const READY_WITHIN: Duration = Duration::from_secs(30);

pub struct Node {
    child: Child,
    pub base: String,
    dir: PathBuf,
    log: PathBuf,
}

impl Node {
    /// `tollgate serve --addr 127.0.0.1:<free port> --no-workers` with `env`, its own data and
    /// spool directories under `dir`, ready to serve when this returns.
    pub async fn start(env: &[(String, String)], dir: &Path) -> Node {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join(format!("node-{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = tollgate(&["serve", "--addr", &addr, "--no-workers"], env)
            .env("TOLLGATE__DATA__DIR", dir)
            .env("TOLLGATE__METERING__SPOOL_DIR", dir.join("spool"))
            .env("TOLLGATE__SERVER__SHUTDOWN_TIMEOUT_SECS", "10")
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("tollgate serve starts");
        let mut node = Node {
            child,
            base: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            log,
        };
        node.wait_until_ready().await;
        node
    }

    /// The process id `tollgate serve` was started with.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn wait_until_ready(&mut self) {
        let client = super::http();
        let started = Instant::now();
        loop {
            let ready = client.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            let exited = self.child.try_wait().expect("child status");
            assert!(
                exited.is_none(),
                "{} exited early\n{}",
                self.base,
                self.tail()
            );
            assert!(
                started.elapsed() < READY_WITHIN,
                "{} not ready within {READY_WITHIN:?}\n{}",
                self.base,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM (the graceful stop a process manager sends).
    fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent to {}", self.base);
    }

    /// Waits for the process to exit; panics (the process is then killed) after `within`.
    async fn exited(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running {within:?} after SIGTERM\n{}",
                self.base,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// For failure messages: the node's warnings and errors (the first 20), then its last
    /// five log lines.
    pub fn tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let alarming = lines
            .iter()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .take(20);
        let last = &lines[lines.len().saturating_sub(5)..];
        alarming.chain(last).copied().collect::<Vec<_>>().join("\n")
    }
}

/// SIGTERM to every node at once; each must then exit 0 within 30 s leaving nothing in its
/// spool (every event drained into the database, none left for a next start).
pub async fn stop_cleanly(nodes: &mut [&mut Node]) {
    for node in nodes.iter() {
        node.terminate();
    }
    for node in nodes.iter_mut() {
        let status = node.exited(Duration::from_secs(30)).await;
        let (base, tail) = (&node.base, node.tail());
        assert_eq!(status.code(), Some(0), "{base} exit code\n{tail}");
        let left = spool_leftovers(&node.dir.join("spool"));
        assert!(left.is_empty(), "{base} left {left:?} in its spool\n{tail}");
    }
}

/// Files in a spool directory (name, bytes), the lock aside.
fn spool_leftovers(spool: &Path) -> Vec<(String, u64)> {
    let entries = std::fs::read_dir(spool).expect("the spool directory exists");
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len()))
        })
        .filter(|(name, _)| name != ".lock")
        .collect()
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
