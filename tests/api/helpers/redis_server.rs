//! A private `redis-server` process for tests that must break Redis (kill connections,
//! restart it) without disturbing the shared one other tests use.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// A `redis-server` on a free local port, killed when dropped.
pub struct PrivateRedis {
    port: u16,
    dir: TempDir,
    child: Child,
}

impl PrivateRedis {
    /// Starts one, or `None` when the `redis-server` binary is not installed.
    pub async fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = spawn(port, dir.path())?;
        let server = Self { port, dir, child };
        server.wait_until_up().await;
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (every connection drops) and starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        self.start_again().await;
    }

    /// Kills the server: every connection drops and its data is lost (nothing is saved).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a stopped server again on the same port, empty, and waits until it answers.
    pub async fn start_again(&mut self) {
        self.child = spawn(self.port, self.dir.path()).expect("redis-server restarts");
        self.wait_until_up().await;
    }

    /// A fresh connection, independent of any application's.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        client.get_multiplexed_async_connection().await
    }

    async fn wait_until_up(&self) {
        let started = Instant::now();
        loop {
            if let Ok(mut conn) = self.connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(port: u16, dir: &Path) -> Option<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A private `redis-server` (the test may stop or pause it), or `None` when the test is
/// skipped.
pub async fn private_redis(test: &str) -> Option<PrivateRedis> {
    super::require_or_skip("redis", super::Backends::from_env().redis, test)?;
    let server = PrivateRedis::start().await;
    if server.is_none() {
        assert!(
            !super::Backends::from_env().require_all,
            "redis-server is not installed"
        );
        eprintln!("skipped: {test} needs the redis-server binary");
    }
    server
}
