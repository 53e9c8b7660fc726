//! Background jobs: `housekeeping::run` called directly, and the real `tollgate worker`
//! running it through apalis, logging a failed run and draining on SIGTERM with exit 0.

use std::{
    io::{BufRead, BufReader},
    process::{Child, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait};
use tollgate::{entities::idempotency_keys, jobs::housekeeping};

use crate::{
    cli::{backend_env, tollgate},
    helpers::spawn_app,
};

fn idempotency_key(key: &str, expires_at: DateTime<Utc>) -> idempotency_keys::ActiveModel {
    idempotency_keys::ActiveModel {
        scope: Set("tnt_jobs".into()),
        key: Set(key.into()),
        request_hash: Set("hash".into()),
        method: Set("POST".into()),
        path: Set("/v1/keys".into()),
        status: Set("completed".into()),
        response_status: Set(Some(201)),
        response_headers: Set(None),
        response_body: Set(None),
        created_at: Set(expires_at - chrono::Duration::days(1)),
        expires_at: Set(expires_at),
    }
}

#[tokio::test]
async fn housekeeping_deletes_expired_idempotency_keys_and_keeps_the_rest() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let now = Utc::now();
    let rows = [
        idempotency_key("expired", now - chrono::Duration::hours(1)),
        idempotency_key("live", now + chrono::Duration::hours(1)),
    ];
    idempotency_keys::Entity::insert_many(rows)
        .exec(db)
        .await
        .unwrap();

    housekeeping::run(db, &app.state.settings.retention)
        .await
        .unwrap();
    housekeeping::run(db, &app.state.settings.retention)
        .await
        .expect("a second run is harmless");

    let left: Vec<String> = idempotency_keys::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.key)
        .collect();
    assert_eq!(left, ["live"]);
}

#[tokio::test]
async fn worker_runs_housekeeping_and_exits_zero_on_sigterm() {
    let backend = backend_env().await;
    let (mut child, lines) = start_worker(&backend.vars, &[]);
    let done = wait_for_line(&mut child, &lines, "housekeeping done");
    assert!(done.contains(r#""level":"INFO""#), "{done}");
    assert_eq!(
        stop(&mut child).code(),
        Some(0),
        "clean exit after draining"
    );
}

#[tokio::test]
async fn worker_logs_a_failed_run_with_its_cause_and_keeps_running() {
    let backend = backend_env().await;
    let on_postgres = backend.vars.iter().any(|(k, _)| k == "DATABASE_URL");
    // An unmigrated database makes housekeeping fail.
    let unmigrated = [("TOLLGATE__DATABASE__MIGRATE_ON_START", "false")];
    let (mut child, lines) = start_worker(&backend.vars, &unmigrated);
    let failed = wait_for_line(&mut child, &lines, "job failed");
    assert!(failed.contains(r#""level":"WARN""#), "{failed}");
    assert!(failed.contains(r#""job":"housekeeping""#), "{failed}");
    // On PostgreSQL the top error is the partition context and the cause comes from the chain.
    let causes: &[&str] = if on_postgres {
        &["creating partition for", "does not exist"]
    } else {
        &["no such table"]
    };
    for cause in causes {
        assert!(failed.contains(cause), "{cause:?} missing from {failed}");
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "a failed run is no crash"
    );
    assert_eq!(
        stop(&mut child).code(),
        Some(0),
        "clean exit after draining"
    );
}

/// Starts `tollgate worker` with JSON logs; its stderr lines arrive on the receiver.
fn start_worker(env: &[(String, String)], extra: &[(&str, &str)]) -> (Child, Receiver<String>) {
    let mut child = tollgate(&["worker"], env)
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, receive) = mpsc::channel();
    // Drained on a thread so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (child, receive)
}

/// The first stderr line containing `needle`, within 30 s; panics with the log otherwise.
fn wait_for_line(child: &mut Child, lines: &Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    child.kill().ok();
    panic!(
        "no log line with {needle:?} within 30 s:\n{}",
        seen.join("\n")
    );
}

/// Sends SIGTERM and waits up to 10 s for the exit.
fn stop(child: &mut Child) -> ExitStatus {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("worker did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
