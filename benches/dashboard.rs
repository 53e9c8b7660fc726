//! How fast the dashboard's default view (the overview, last 24 hours) is drawn in headless
//! Chromium on localhost, with the demo tenant and its 30 days of history on SQLite (what
//! `cargo run -- serve --demo` serves): the time from navigation start until the page marks
//! itself whole (`performance.mark('dashboard-ready')`, set with `<body data-ready>` once
//! every widget has its data and every chart is drawn). The first visit after login has cold
//! caches; later visits revalidate the static files. Baseline in the same run: the login
//! page's load event (static HTML and CSS, no data).
//!
//! `cargo bench --bench dashboard` (Debian's `chromium`; `TOLLGATE_BENCH_CHROMIUM` names
//! another; `BENCH_RUNS`, default 10).

use std::time::{Duration, Instant};

use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;
use tollgate::{config::Settings, demo, startup::Application};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    tollgate::gateway::install_tls_provider();
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    settings.server.addr = "127.0.0.1:0".into();
    settings.data.dir = data.path().to_path_buf();
    let settings = settings.finalize().unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let started = Instant::now();
    demo::seed_with_history(&state.db).await.unwrap();
    println!(
        "demo history stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cancel = app.cancel_token();
    tokio::spawn(app.run_until_stopped());

    let profile = tempfile::tempdir().unwrap();
    let executable =
        std::env::var("TOLLGATE_BENCH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .user_data_dir(profile.path())
        .window_size(1280, 900)
        .viewport(None)
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .build()
        .unwrap();
    let (mut browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser.new_page("about:blank").await.unwrap();

    page.goto(format!("{base}/dashboard/login")).await.unwrap();
    let login_ms: f64 = eval(&page, LOAD_EVENT).await;
    fill(&page, "#login-email", demo::OWNER_EMAIL).await;
    fill(&page, "#login-password", demo::PASSWORD).await;
    page.find_element("#login-submit")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let cold = ready_ms(&page).await;

    let mut warm = Vec::new();
    let mut logins = Vec::new();
    for _ in 0..runs {
        page.goto(format!("{base}/dashboard/login")).await.unwrap();
        logins.push(eval::<f64>(&page, LOAD_EVENT).await);
        page.goto(format!("{base}/dashboard/")).await.unwrap();
        warm.push(ready_ms(&page).await);
    }
    let warm_median = median(&mut warm);
    let login_median = median(&mut logins);
    println!("login page load (baseline): first {login_ms:.0} ms, median {login_median:.0} ms");
    println!("overview drawn, first visit (cold caches): {cold:.0} ms");
    println!(
        "overview drawn, median of {runs}: {warm_median:.0} ms (min {:.0}, max {:.0}) = {:.1}× the baseline",
        warm[0],
        warm[warm.len() - 1],
        warm_median / login_median
    );
    browser.close().await.ok();
    events.abort();
    cancel.cancel();
}

/// Milliseconds from navigation start to the load event.
const LOAD_EVENT: &str = "(() => { const n = performance.getEntriesByType('navigation')[0]; \
     return n.loadEventEnd > 0 ? n.loadEventEnd : null; })()";

async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Fails while the page navigates (its context is gone): try again.
        let value = page.evaluate(js).await.ok();
        if let Some(Ok(Some(value))) = value.map(|v| v.into_value::<Option<T>>()) {
            return value;
        }
        assert!(Instant::now() < deadline, "`{js}` never answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the page's ready mark; milliseconds since its navigation started.
async fn ready_ms(page: &Page) -> f64 {
    eval(
        page,
        "(() => { const m = performance.getEntriesByName('dashboard-ready')[0]; \
         return m ? m.startTime : null; })()",
    )
    .await
}

async fn fill(page: &Page, selector: &str, text: &str) {
    let element = page.find_element(selector).await.unwrap();
    element.click().await.unwrap();
    element.type_str(text).await.unwrap();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
