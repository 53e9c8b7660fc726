//! Which real backends this run uses, from `TOLLGATE_TEST_DATABASE_URL` (a PostgreSQL server
//! URL) and `TOLLGATE_TEST_REDIS_URL`; `TOLLGATE_TEST_REQUIRE_ALL=1` turns every skip for a
//! missing backend into a failure.

use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct Backends {
    pub postgres: Option<String>,
    pub redis: Option<String>,
    pub require_all: bool,
}

impl Backends {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            postgres: var("TOLLGATE_TEST_DATABASE_URL"),
            redis: var("TOLLGATE_TEST_REDIS_URL"),
            require_all: var("TOLLGATE_TEST_REQUIRE_ALL").is_some_and(|v| v == "1"),
        }
    }
}

/// For tests that need a backend: returns its URL, or prints why the test is skipped and
/// returns `None`. Under `TOLLGATE_TEST_REQUIRE_ALL=1` a missing backend fails the test.
pub fn require_or_skip(what: &str, url: Option<String>, test: &str) -> Option<String> {
    if url.is_some() {
        return url;
    }
    let var = match what {
        "postgres" => "TOLLGATE_TEST_DATABASE_URL",
        "chromium" => "TOLLGATE_TEST_CHROMIUM",
        _ => "TOLLGATE_TEST_REDIS_URL",
    };
    if Backends::from_env().require_all {
        panic!("{test}: {what} is required (TOLLGATE_TEST_REQUIRE_ALL=1) but {var} is not set");
    }
    eprintln!("skipped: no backend — {test} needs {what}; set {var} to run it");
    None
}

/// A throwaway PostgreSQL database `t_<uuid>`, dropped when this value is dropped.
pub struct PgDatabase {
    server_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(server_url: &str) -> Self {
        let name = format!("t_{}", Uuid::new_v4().simple());
        let admin = Database::connect(admin_url(server_url))
            .await
            .expect("connecting to Postgres");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        admin.close().await.ok();
        let url = with_database(server_url, &name);
        Self {
            server_url: server_url.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server_url.clone(), self.name.clone());
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = Database::connect(admin_url(&server)).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = admin.execute_unprepared(&sql).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn admin_url(server_url: &str) -> String {
    with_database(server_url, "postgres")
}

fn with_database(server_url: &str, database: &str) -> String {
    let mut url = url::Url::parse(server_url).expect("TOLLGATE_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{database}"));
    url.to_string()
}
