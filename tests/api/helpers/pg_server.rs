//! A private PostgreSQL cluster (`initdb` into a temporary directory, its own port) for tests
//! that must stop the database under a running server without disturbing the shared one
//! other tests use. PostgreSQL refuses to run as root, so as root its programs run as the
//! `postgres` system user.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use tempfile::TempDir;

/// A running cluster, stopped (immediately) when dropped.
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_root: bool,
}

impl PrivatePostgres {
    /// Creates and starts one, or `None` when PostgreSQL's server programs are not installed
    /// (found through `pg_config --bindir`).
    pub fn start() -> Option<Self> {
        let bin = server_bin_dir()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let as_root = run(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0";
        if as_root {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let server = Self {
            bin,
            dir,
            port,
            as_root,
        };
        let data = server.data_dir();
        server.pg("initdb", |c| {
            c.args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
                .arg(&data)
        });
        server.start_again();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way an operator does (`pg_ctl stop -m fast`): every session is
    /// terminated and new connections are refused.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts the (stopped) server again on the same port; returns once it accepts
    /// connections (`pg_ctl start -w` waits for that).
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.pg("pg_ctl", |c| {
            c.args(["start", "-w", "-D"])
                .arg(self.data_dir())
                .args(["-o", &options, "-l"])
                .arg(&log)
        });
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        self.pg("pg_ctl", |c| c.args(args).arg("-D").arg(self.data_dir()))
    }

    /// Runs one of the server programs; panics with its output when it fails.
    fn pg(&self, program: &str, args: impl FnOnce(&mut Command) -> &mut Command) -> Output {
        let mut command = self.command(program);
        args(&mut command);
        run(command.current_dir(self.dir.path()))
    }

    /// One of the server programs, run as `postgres` when this process is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if !self.as_root {
            return Command::new(path);
        }
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Where `initdb`, `pg_ctl` and `postgres` are: `pg_config --bindir`, else the newest
/// Debian-style `/usr/lib/postgresql/<version>/bin`.
fn server_bin_dir() -> Option<PathBuf> {
    let configured = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|dir| PathBuf::from(dir.trim()));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|dir| {
        let version = dir.parent().and_then(Path::file_name);
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    configured
        .into_iter()
        .chain(debian.into_iter().rev())
        .find(|dir| dir.join("initdb").exists())
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
