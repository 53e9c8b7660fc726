//! A real headless Chromium for the dashboard tests (Debian's `chromium`, named by
//! `TOLLGATE_TEST_CHROMIUM`). Every tab records console errors, uncaught exceptions and
//! browser log errors (CSP violations, failed loads), so a test can demand there were none.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chromiumoxide::{
    Browser, BrowserConfig, Page,
    cdp::{
        browser_protocol::log::{EventEntryAdded, LogEntryLevel},
        js_protocol::runtime::{ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown},
    },
    page::ScreenshotParams,
};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::helpers::require_or_skip;

/// A running browser; closed when dropped.
pub struct Chrome {
    browser: Browser,
    handler: JoinHandle<()>,
    _profile: TempDir,
}

impl Chrome {
    /// Launches the browser, or `None` (the test is skipped) without `TOLLGATE_TEST_CHROMIUM`.
    pub async fn launch(test: &str) -> Option<Self> {
        let var = std::env::var("TOLLGATE_TEST_CHROMIUM")
            .ok()
            .filter(|v| !v.is_empty());
        let executable = require_or_skip("chromium", var, test)?;
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .viewport(None)
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .request_timeout(Duration::from_secs(30))
            .build()
            .expect("browser config");
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Some(Self {
            browser,
            handler,
            _profile: profile,
        })
    }

    /// A new tab recording problems, at `about:blank`.
    pub async fn tab(&self) -> Tab {
        let page = self.browser.new_page("about:blank").await.expect("new tab");
        page.enable_log().await.unwrap();
        page.enable_runtime().await.unwrap();
        let problems = Arc::new(Mutex::new(Vec::new()));
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .unwrap();
        let mut thrown = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let mut logged = page.event_listener::<EventEntryAdded>().await.unwrap();
        let sink = problems.clone();
        tokio::spawn(async move {
            loop {
                let problem = tokio::select! {
                    Some(e) = console.next() => (e.r#type == ConsoleApiCalledType::Error)
                        .then(|| format!("console.error: {:?}", e.args.iter().map(|a| &a.value).collect::<Vec<_>>())),
                    Some(e) = thrown.next() => Some(format!("exception: {} {:?}", e.exception_details.text, e.exception_details.exception.as_ref().and_then(|x| x.description.clone()))),
                    Some(e) = logged.next() => (e.entry.level == LogEntryLevel::Error)
                        .then(|| format!("log: {} ({:?})", e.entry.text, e.entry.url)),
                    else => break,
                };
                if let Some(problem) = problem {
                    sink.lock().unwrap().push(problem);
                }
            }
        });
        Tab { page, problems }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        self.handler.abort();
    }
}

/// One browser tab.
pub struct Tab {
    pub page: Page,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Tab {
    pub async fn goto(&self, url: &str) {
        self.page
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Evaluates `js` and returns its value.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        self.page
            .evaluate(js)
            .await
            .unwrap_or_else(|e| panic!("evaluate {js}: {e}"))
            .into_value()
            .unwrap_or_else(|e| panic!("value of {js}: {e}"))
    }

    /// Waits until `js` is true (at most 20 s), polling.
    pub async fn wait_for(&self, js: &str, what: &str) -> Duration {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if self
                .page
                .evaluate(js)
                .await
                .ok()
                .and_then(|v| v.into_value::<bool>().ok())
                == Some(true)
            {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let url = self.page.url().await.ok().flatten();
        panic!(
            "{what}: `{js}` never became true on {url:?}; problems: {:?}",
            self.problems()
        );
    }

    /// Waits for the page's "charts ready" signal (`<body data-ready="true">`).
    pub async fn wait_ready(&self, what: &str) -> Duration {
        self.wait_for(
            "document.body && document.body.dataset.ready === 'true'",
            what,
        )
        .await
    }

    /// Types `text` into the element at `selector`.
    pub async fn fill(&self, selector: &str, text: &str) {
        let element = self
            .page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        element.click().await.unwrap();
        element.type_str(text).await.unwrap();
    }

    pub async fn click(&self, selector: &str) {
        let element = self
            .page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// How many elements match `selector`.
    pub async fn count(&self, selector: &str) -> usize {
        self.eval(&format!("document.querySelectorAll({selector:?}).length"))
            .await
    }

    /// The text of the first element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        self.eval(&format!(
            "(document.querySelector({selector:?}) || {{}}).textContent || ''"
        ))
        .await
    }

    /// Saves a full-page screenshot as `<target>/tmp/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let params = ScreenshotParams::builder().full_page(true).build();
        self.page
            .save_screenshot(params, &path)
            .await
            .expect("screenshot");
        path
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    /// Panics when the page logged an error or threw.
    pub fn assert_no_problems(&self, page: &str) {
        let problems = self.problems();
        assert!(
            problems.is_empty(),
            "{page}: console errors or exceptions: {problems:#?}"
        );
    }
}
