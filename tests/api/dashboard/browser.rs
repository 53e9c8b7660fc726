//! The dashboard in a real headless Chromium, with the demo tenant and two days of its
//! traffic: log in, visit every page, wait for its "charts ready" signal, check the charts and
//! tables hold the demo data with zero console errors, change the date range, watch the live
//! counter move after traffic, and create a key in the UI that then works against
//! `/v1/ping`. Screenshots go to `<target>/tmp/screenshots/`.

use tollgate::demo;

use super::chrome::{Chrome, Tab};
use crate::helpers::{TestApp, spawn_app};

/// Days of demo history the test stores (the demo itself stores 30).
const DAYS: i64 = 2;

async fn demo_app() -> (TestApp, demo::Demo) {
    let app = spawn_app().await;
    let seeded = demo::seed(&app.state.db).await.unwrap();
    demo::ensure_history(&app.state.db, &seeded, DAYS)
        .await
        .unwrap();
    (app, seeded)
}

async fn log_in(app: &TestApp, tab: &Tab, email: &str, page: &str) {
    log_in_with(app, tab, email, demo::PASSWORD, page).await;
}

async fn log_in_with(app: &TestApp, tab: &Tab, email: &str, password: &str, page: &str) {
    tab.goto(&app.url(page)).await;
    tab.wait_for("!!document.querySelector('#login-form')", "the login form")
        .await;
    tab.fill("#login-email", email).await;
    tab.fill("#login-password", password).await;
    tab.click("#login-submit").await;
    tab.wait_for(
        "!document.querySelector('#login-form')",
        "leaving the login",
    )
    .await;
}

/// Opens `path`, waits for the ready signal and takes a screenshot.
async fn visit(app: &TestApp, tab: &Tab, path: &str, name: &str) {
    tab.goto(&app.url(path)).await;
    tab.wait_ready(name).await;
    tab.screenshot(name).await;
    tab.assert_no_problems(name);
}

/// The number in the first element matching `selector` ("12,345" -> 12345).
async fn number(tab: &Tab, selector: &str) -> u64 {
    let text = tab.text(selector).await;
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{selector} holds no number: {text:?}"))
}

#[tokio::test]
async fn every_page_draws_the_demo_data_without_errors() {
    let Some(chrome) = Chrome::launch("every_page_draws_the_demo_data_without_errors").await else {
        return;
    };
    let (app, seeded) = demo_app().await;
    let tab = chrome.tab().await;
    log_in(&app, &tab, demo::OWNER_EMAIL, "/dashboard/").await;
    tab.wait_ready("overview").await;
    tab.screenshot("overview").await;
    tab.assert_no_problems("overview");
    assert!(
        number(&tab, "[data-stat=requests] .stat-value").await > 100,
        "24 h of demo calls"
    );
    for chart in ["requests", "latency", "status-codes"] {
        let selector = format!("[data-chart={chart}] canvas");
        assert!(
            tab.count(&selector).await >= 1,
            "the {chart} chart is drawn"
        );
    }

    visit(&app, &tab, "/dashboard/endpoints", "endpoints").await;
    assert!(tab.count("[data-table=endpoints] tbody tr").await >= 3);
    assert!(tab.count("[data-chart=endpoint-heatmap] td").await > 10);
    assert!(tab.count("[data-chart=weekday-heatmap] td").await > 10);

    visit(&app, &tab, "/dashboard/keys", "keys").await;
    assert_eq!(tab.count("[data-table=keys] tbody tr").await, 3);
    assert!(tab.count("[data-table=keys] [data-util=minute]").await >= 3);

    let (_, render_farm) = seeded.keys[0];
    let key_id = tollgate::ids::KeyId(render_farm).to_string();
    visit(&app, &tab, &format!("/dashboard/keys/{key_id}"), "key").await;
    assert!(tab.count("[data-chart=key-requests] canvas").await >= 1);

    visit(&app, &tab, "/dashboard/consumers", "consumers").await;
    assert_eq!(tab.count("[data-table=consumers] tbody tr").await, 3);

    visit(&app, &tab, "/dashboard/errors", "errors").await;
    assert!(tab.count("[data-table=recent-errors] tbody tr").await > 0);
    assert!(tab.count("[data-table=slow-requests] tbody tr").await > 0);

    visit(&app, &tab, "/dashboard/exports", "exports").await;
    let href: String = tab
        .eval("document.querySelector('#export-link').getAttribute('href')")
        .await;
    assert!(href.starts_with("/v1/exports/usage?"), "{href}");

    visit(&app, &tab, "/dashboard/audit", "audit").await;
    assert!(
        tab.count("[data-table=audit] tbody tr").await > 0,
        "the demo's keys were audited"
    );
}

#[tokio::test]
async fn the_range_live_counter_and_key_creation_work_in_the_browser() {
    let test = "the_range_live_counter_and_key_creation_work_in_the_browser";
    let Some(chrome) = Chrome::launch(test).await else {
        return;
    };
    let (app, _) = demo_app().await;
    let tab = chrome.tab().await;
    log_in(&app, &tab, demo::OWNER_EMAIL, "/dashboard/").await;
    tab.wait_ready("overview").await;

    // The date range changes what is shown: the last hour holds fewer calls than 24 h.
    let day = number(&tab, "[data-stat=requests] .stat-value").await;
    tab.click("[data-range='7d']").await;
    tab.wait_for("location.search.includes('7d')", "the range in the URL")
        .await;
    tab.wait_ready("overview, 7 days").await;
    let week = number(&tab, "[data-stat=requests] .stat-value").await;
    assert!(
        week > day,
        "7 days ({week}) hold more calls than 24 h ({day})"
    );

    // The live counter moves after traffic.
    tab.wait_for(
        "document.querySelector('#live-indicator').dataset.live === 'live'",
        "live",
    )
    .await;
    let secret = "tg_live_demoCheckoutWeb000000000000000000000000";
    for _ in 0..20 {
        assert_eq!(app.ping(secret).await.status().as_u16(), 200);
    }
    tab.wait_for(
        "document.querySelectorAll('#live-feed li').length > 0",
        "calls in the live feed",
    )
    .await;
    tab.wait_for(
        "parseFloat(document.querySelector('#live-rps').textContent) > 0",
        "the requests/s counter moving",
    )
    .await;
    tab.screenshot("overview-live").await;

    // A key created in the UI works against /v1/ping, and its secret is shown once.
    tab.goto(&app.url("/dashboard/keys")).await;
    tab.wait_ready("keys").await;
    tab.fill("#create-key-name", "made-in-the-browser").await;
    tab.click("#create-key-submit").await;
    tab.wait_for(
        "document.querySelector('#secret-dialog').open",
        "the secret dialog",
    )
    .await;
    let secret = tab.text("#secret-value").await;
    assert!(secret.starts_with("tg_"), "{secret:?}");
    tab.screenshot("key-created").await;
    assert_eq!(app.ping(secret.trim()).await.status().as_u16(), 200);
    tab.click("#secret-close").await;
    tab.wait_for(
        "document.querySelector('#secret-value').textContent === ''",
        "the secret wiped",
    )
    .await;

    // Rotating it (the old secret stops at once) shows the new secret once; revoking it
    // refuses the new one.
    let button = |action: &str| {
        format!(
            "(() => {{ const rows = [...document.querySelectorAll('[data-table=keys] tbody tr')]; \
             const row = rows.find((r) => r.textContent.includes('made-in-the-browser')); \
             row.querySelector('button[data-action={action}]').click(); return true; }})()"
        )
    };
    tab.wait_ready("keys after creating one").await;
    tab.eval::<bool>(&button("rotate")).await;
    tab.wait_for(
        "document.querySelector('#confirm-dialog').open",
        "the rotate dialog",
    )
    .await;
    tab.click("#confirm-ok").await;
    tab.wait_for(
        "document.querySelector('#secret-dialog').open && \
         document.querySelector('#secret-value').textContent.startsWith('tg_')",
        "the rotated secret",
    )
    .await;
    let rotated = tab.text("#secret-value").await;
    assert_ne!(rotated.trim(), secret.trim());
    let old = app.ping(secret.trim()).await.status().as_u16();
    assert!(old == 401 || old == 403, "the old secret stopped: {old}");
    assert_eq!(app.ping(rotated.trim()).await.status().as_u16(), 200);
    tab.click("#secret-close").await;
    tab.wait_ready("keys after rotating").await;
    tab.eval::<bool>(&button("revoke")).await;
    tab.wait_for(
        "document.querySelector('#confirm-dialog').open",
        "the revoke dialog",
    )
    .await;
    tab.click("#confirm-ok").await;
    tab.wait_for(
        "(document.querySelector('#key-action-status').textContent || '').startsWith('Revoke') \
         && document.querySelector('#key-action-status').textContent.includes('done')",
        "the revocation",
    )
    .await;
    let refused = app.ping(rotated.trim()).await.status().as_u16();
    assert_eq!(refused, 403, "a revoked key is refused");
    tab.assert_no_problems("keys");
}

#[tokio::test]
async fn a_platform_admin_sees_every_tenant_and_picks_one_and_phones_fit() {
    let test = "a_platform_admin_sees_every_tenant_and_picks_one_and_phones_fit";
    let Some(chrome) = Chrome::launch(test).await else {
        return;
    };
    let (app, seeded) = demo_app().await;
    let tab = chrome.tab().await;
    log_in(&app, &tab, demo::ADMIN_EMAIL, "/dashboard/").await;
    tab.wait_ready("admin overview, all tenants").await;
    assert_eq!(
        tab.eval::<String>("document.querySelector('#tenant-scope').value")
            .await,
        ""
    );
    let all = number(&tab, "[data-stat=requests] .stat-value").await;
    assert!(all > 100, "every tenant's calls: {all}");
    tab.screenshot("admin-overview").await;

    // Picking the demo tenant scopes every widget and the live feed to it.
    let tenant = tollgate::ids::TenantId(seeded.tenant_id).to_string();
    tab.wait_for(
        &format!("!!document.querySelector('#tenant-scope option[value=\"{tenant}\"]')"),
        "the tenant list",
    )
    .await;
    tab.eval::<bool>(&format!(
        "(() => {{ const s = document.querySelector('#tenant-scope'); s.value = '{tenant}'; \
         s.dispatchEvent(new Event('change')); return true; }})()"
    ))
    .await;
    tab.wait_for(
        &format!("location.search.includes('{tenant}')"),
        "the tenant in the URL",
    )
    .await;
    tab.wait_ready("admin overview, one tenant").await;
    assert_eq!(
        number(&tab, "[data-stat=requests] .stat-value").await,
        all,
        "one tenant only"
    );
    tab.wait_for(
        "document.querySelector('#live-indicator').dataset.live === 'live'",
        "live",
    )
    .await;
    visit(
        &app,
        &tab,
        &format!("/dashboard/endpoints?tenant_id={tenant}"),
        "admin-endpoints",
    )
    .await;
    tab.assert_no_problems("admin pages");

    // At phone width (same session) the overview still fits: nothing wider than the screen.
    let phone = chrome.tab().await;
    phone
        .page
        .execute(
            chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams::new(
                375, 812, 2.0, true,
            ),
        )
        .await
        .unwrap();
    phone
        .goto(&app.url(&format!("/dashboard/?tenant_id={tenant}")))
        .await;
    phone.wait_ready("overview at 375 px").await;
    let fits: bool = phone
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    phone.screenshot("overview-phone").await;
    assert!(fits, "the overview scrolls sideways at 375 px");
    phone.assert_no_problems("overview at 375 px");
}

#[tokio::test]
async fn a_tenant_without_traffic_sees_empty_states_and_a_bad_range_is_an_error_state() {
    let test = "a_tenant_without_traffic_sees_empty_states_and_a_bad_range_is_an_error_state";
    let Some(chrome) = Chrome::launch(test).await else {
        return;
    };
    let app = spawn_app().await;
    let owner = crate::helpers::new_tenant_member(&app, tollgate::tenancy::Role::Owner).await;
    let tab = chrome.tab().await;
    let password = crate::helpers::FIXTURE_PASSWORD;
    log_in_with(&app, &tab, &owner.email, password, "/dashboard/").await;
    tab.wait_ready("an empty overview").await;
    for widget in ["requests", "latency", "status-codes"] {
        let state: String = tab
            .eval(&format!(
                "document.querySelector('[data-widget={widget}]').dataset.state"
            ))
            .await;
        assert_eq!(state, "empty", "the {widget} widget without calls");
    }
    assert_eq!(
        tab.text("[data-stat=requests] .stat-value").await.trim(),
        "0"
    );
    tab.screenshot("overview-empty").await;
    tab.assert_no_problems("an empty overview");

    // A window the API refuses (longer than three years) shows the problem's detail in the
    // widgets instead of charts.
    tab.goto(&app.url("/dashboard/?from=2019-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"))
        .await;
    tab.wait_ready("an overview with a refused window").await;
    let state: String = tab
        .eval("document.querySelector('[data-widget=requests]').dataset.state")
        .await;
    assert_eq!(state, "error");
    let message = tab.text("[data-widget=requests] .widget-status").await;
    assert!(
        message.contains("years") || message.contains("window"),
        "{message}"
    );
}
