//! Who may export what (billing readers their own tenant; platform administrators any or
//! all), bad parameters as 400 problems naming them, and empty windows.

use tollgate::{demo, tenancy::Role};

use super::{CSV, EVENT_HEADER, WINDOW, body, csv_export, event_csv, export, parse_csv, world};
use crate::helpers::{assert_problem, join_tenant, login, new_tenant_member, spawn_app};

#[tokio::test]
async fn an_empty_window_is_a_header_or_an_empty_array() {
    let w = world().await;
    let window = "from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z";
    assert_eq!(
        csv_export(&w, &format!("level=event&{window}")).await,
        EVENT_HEADER
    );
    assert!(csv_export(&w, window).await.starts_with("bucket_start,"));
    assert_eq!(parse_csv(&csv_export(&w, window).await).len(), 1);
    for level in ["event", "bucket"] {
        let query = format!("format=json&level={level}&{window}");
        let json = export(&w.app, &w.finance.token, &query).await;
        assert_eq!(body(json, "application/json").await, "[]");
    }
}

#[tokio::test]
async fn only_billing_readers_export_and_only_their_tenant() {
    let w = world().await;
    for role in [Role::Viewer, Role::Developer] {
        let member = join_tenant(&w.app, w.owner.tenant_id, role).await;
        assert_problem(export(&w.app, &member.token, WINDOW).await, 403).await;
    }
    let owner = export(&w.app, &w.owner.token, &format!("level=event&{WINDOW}")).await;
    assert_eq!(body(owner, CSV).await, event_csv(&w));
    let stranger = new_tenant_member(&w.app, Role::Finance).await;
    let theirs = format!("tenant_id={}&{WINDOW}", w.owner.tenant_id);
    let problem = assert_problem(export(&w.app, &stranger.token, &theirs).await, 403).await;
    assert_eq!(
        problem["detail"],
        "Only platform administrators may read another tenant's usage."
    );
    // Their own export holds none of the world's events.
    let own = export(&w.app, &stranger.token, &format!("level=event&{WINDOW}")).await;
    assert_eq!(body(own, CSV).await, EVENT_HEADER);
    let anonymous = w.app.get(&format!("/v1/exports/usage?{WINDOW}")).await;
    assert_problem(anonymous, 401).await;
}

#[tokio::test]
async fn platform_admins_export_every_tenant_one_after_another_or_the_one_named() {
    let w = world().await;
    let admin = login(&w.app, demo::ADMIN_EMAIL).await;
    let all = export(&w.app, &admin, &format!("level=event&{WINDOW}")).await;
    let rows = parse_csv(&body(all, CSV).await);
    // The world's four events and the other tenant's one, grouped by tenant id.
    assert_eq!(rows.len(), 6);
    let tenants: Vec<&str> = rows[1..].iter().map(|r| r[2].as_str()).collect();
    let mut grouped = tenants.clone();
    grouped.sort();
    assert_eq!(tenants, grouped);
    let ours = format!("level=event&tenant_id={}&{WINDOW}", w.owner.tenant_id);
    assert_eq!(
        body(export(&w.app, &admin, &ours).await, CSV).await,
        event_csv(&w)
    );
    let buckets = export(&w.app, &admin, &format!("granularity=hour&{WINDOW}")).await;
    assert_eq!(parse_csv(&body(buckets, CSV).await).len(), 5);
}

#[tokio::test]
async fn bad_parameters_are_400_problems_naming_them() {
    let app = spawn_app().await;
    let finance = new_tenant_member(&app, Role::Finance).await;
    for (query, needle) in [
        ("format=xml", "`format`"),
        ("level=row", "`level`"),
        ("granularity=week", "`granularity`"),
        ("status_class=6xx", "`status_class`"),
        ("key_id=tnt_0193a4b2c3d47e8f9a0b1c2d3e4f5a6b", "`key_id`"),
        ("from=yesterday", "`from`"),
        (
            "from=2026-11-23T10:00:00Z&to=2026-11-23T09:00:00Z",
            "`from`",
        ),
        (
            "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "at most",
        ),
    ] {
        let problem = assert_problem(export(&app, &finance.token, query).await, 400).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{query}: {detail}");
    }
}
