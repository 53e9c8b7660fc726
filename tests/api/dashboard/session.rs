//! Dashboard sessions over plain HTTP: the login form sets an HttpOnly, SameSite=Strict
//! cookie; pages without it redirect to the login; the cookie authenticates API calls, which
//! need the CSRF token on unsafe methods; every answer carries the CSP; static files are
//! served from the binary with ETags.

use reqwest::{Client, Response, redirect::Policy};
use serde_json::json;
use tollgate::tenancy::Role;

use crate::helpers::{
    FIXTURE_PASSWORD as PASSWORD, TestApp, assert_problem, new_tenant_member, spawn_app,
};

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Logs in through the form and returns the session cookie (`tollgate_session=…`).
pub async fn session_cookie(app: &TestApp, email: &str) -> String {
    let response = client()
        .post(app.url("/dashboard/login"))
        .header("Origin", app.address.as_str())
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("next", "/dashboard/keys"),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status != 303 {
        panic!(
            "login as {email}: {status} {}",
            response.text().await.unwrap()
        );
    }
    assert_eq!(response.headers()["location"], "/dashboard/keys");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    cookie.split(';').next().unwrap().to_owned()
}

/// The CSRF token the page rendered for this session.
async fn csrf_of(app: &TestApp, cookie: &str) -> String {
    let page = get(app, "/dashboard/", Some(cookie)).await;
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    let marker = "name=\"csrf-token\" content=\"";
    let start = html.find(marker).expect("the CSRF meta tag") + marker.len();
    html[start..start + 32].to_owned()
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Response {
    let mut request = client().get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn pages_need_a_session_and_the_login_form_starts_one() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let anonymous = get(&app, "/dashboard/endpoints?range=7d", None).await;
    assert_eq!(anonymous.status().as_u16(), 303);
    assert_eq!(
        anonymous.headers()["location"],
        "/dashboard/login?next=%2Fdashboard%2Fendpoints%3Frange%3D7d"
    );
    assert_eq!(
        get(&app, "/", None).await.headers()["location"],
        "/dashboard/"
    );

    let login = get(&app, "/dashboard/login", None).await;
    assert_eq!(login.status().as_u16(), 200);
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(login.headers()["x-frame-options"], "DENY");

    let cookie = session_cookie(&app, &owner.email).await;
    let page = get(&app, "/dashboard/keys", Some(&cookie)).await;
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains(&owner.email), "the user is named on the page");
    assert!(
        !html.contains("<script>") && !html.contains("onclick"),
        "no inline script"
    );

    // A wrong password answers the form again with the reason, and no cookie.
    let wrong = client()
        .post(app.url("/dashboard/login"))
        .form(&[("email", owner.email.as_str()), ("password", "not-it")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Invalid email or password.")
    );

    // A login posted from another site is refused; `next` never leaves the dashboard.
    let forged = client()
        .post(app.url("/dashboard/login"))
        .header("Origin", "https://evil.example")
        .form(&[("email", owner.email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_problem(forged, 403).await;
    let away = client()
        .post(app.url("/dashboard/login"))
        .form(&[
            ("email", owner.email.as_str()),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(away.headers()["location"], "/dashboard/");
}

#[tokio::test]
async fn the_cookie_authenticates_api_calls_and_unsafe_ones_need_the_csrf_token() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let cookie = session_cookie(&app, &owner.email).await;
    let keys = client()
        .get(app.url("/v1/keys"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status().as_u16(), 200, "GET needs no CSRF token");

    let create = |csrf: Option<String>| {
        let mut request = client()
            .post(app.url("/v1/keys"))
            .header("Cookie", &cookie)
            .json(&json!({"name": "from the dashboard"}));
        if let Some(csrf) = csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        request.send()
    };
    let problem = assert_problem(create(None).await.unwrap(), 403).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("CSRF"),
        "{problem}"
    );
    assert_problem(create(Some("0".repeat(32))).await.unwrap(), 403).await;
    let csrf = csrf_of(&app, &cookie).await;
    assert_eq!(
        create(Some(csrf.clone())).await.unwrap().status().as_u16(),
        201
    );

    // Logging out needs the token too, and ends the session.
    let logout = |csrf: &str| {
        client()
            .post(app.url("/dashboard/logout"))
            .header("Cookie", &cookie)
            .form(&[("csrf", csrf)])
            .send()
    };
    assert_problem(logout("nope").await.unwrap(), 403).await;
    let out = logout(&csrf).await.unwrap();
    assert_eq!(out.status().as_u16(), 303);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("tollgate_session=;"), "{cleared}");
}

#[tokio::test]
async fn a_member_of_two_tenants_switches_between_them() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let second = crate::helpers::new_tenant(&app, "Second shop").await;
    crate::helpers::add_membership(&app, &owner.email, second, Role::Viewer).await;
    let cookie = session_cookie(&app, &owner.email).await;
    let csrf = csrf_of(&app, &cookie).await;
    let switched = client()
        .post(app.url("/dashboard/switch-tenant"))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("tenant_id", &second.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status().as_u16(), 303);
    let new_cookie = switched.headers()["set-cookie"].to_str().unwrap();
    let new_cookie = new_cookie.split(';').next().unwrap();
    let me = client()
        .get(app.url("/v1/me"))
        .header("Cookie", new_cookie)
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["active_tenant_id"], second.to_string());
}

#[tokio::test]
async fn static_files_come_from_the_binary_with_etags() {
    let app = spawn_app().await;
    let path = "/dashboard/static/vendor/uplot-1.6.32/uPlot.iife.min.js";
    let first = get(&app, path, None).await;
    assert_eq!(first.status().as_u16(), 200);
    assert!(
        first.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = client()
        .get(app.url(path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_problem(get(&app, "/dashboard/static/nope.js", None).await, 404).await;
}
