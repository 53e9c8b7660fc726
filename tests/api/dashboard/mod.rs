//! The dashboard: sessions, CSRF and the security headers over plain HTTP (`session`), and
//! every page driven in a real headless Chromium (`browser`, when `TOLLGATE_TEST_CHROMIUM`
//! names the browser).

mod browser;
mod chrome;
mod session;
