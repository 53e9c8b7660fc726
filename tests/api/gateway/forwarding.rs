//! What crosses the gateway: method, path, query, body and end-to-end headers; what stays
//! behind (the API key, hop-by-hop headers both ways); what the gateway adds; how paths map;
//! upstream answers relayed untouched whatever their status.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::events_of;

use super::{
    assert_rate_limit_headers, call, caller, header, route, spawn_gateway,
    upstream::{RawUpstream, Upstream, echoed},
};

#[tokio::test]
async fn a_call_reaches_the_upstream_with_its_method_path_query_body_and_headers() {
    let upstream = Upstream::start().await;
    let mut render = route("/gw/render", upstream.url("/api"));
    render.template = Some("/gw/render/{tail}".into());
    let app = spawn_gateway(vec![render], |_| {}).await;
    let c = caller(&app, json!({"per_minute": 10})).await;

    let response = call(
        &app,
        Method::POST,
        "/gw/render/items/42?x=1&y=%20z",
        &c.secret,
    )
    .header("X-Forwarded-For", "203.0.113.9")
    .header("X-Tollgate-Tenant", "tnt_spoofed")
    .header("X-Tollgate-Key", "key_spoofed")
    .header("Authorization", "Bearer for-the-upstream")
    .header("X-Custom", "kept")
    .header("User-Agent", "gateway-test")
    .body("hello")
    .send()
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "x-upstream"), "echo");
    assert_rate_limit_headers(&response, 10);
    assert_eq!(header(&response, "x-ratelimit-minute-remaining"), "9");
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/items/42");
    assert_eq!(echo["query"], "x=1&y=%20z");
    assert_eq!(echo["body"], "hello");
    assert!(
        echoed(&echo, "x-api-key").is_empty(),
        "the API key went upstream"
    );
    let tollgate_host = app.address.trim_start_matches("http://");
    for (name, expected) in [
        ("host", upstream.addr.to_string().as_str()),
        ("x-tollgate-tenant", &c.owner.tenant_id.to_string()),
        ("x-tollgate-key", &c.key_id),
        ("x-forwarded-for", "203.0.113.9, 127.0.0.1"),
        ("x-real-ip", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", tollgate_host),
        (
            "x-forwarded-port",
            tollgate_host.rsplit(':').next().unwrap(),
        ),
        ("x-forwarded-prefix", "/gw/render"),
        ("authorization", "Bearer for-the-upstream"),
        ("x-custom", "kept"),
        ("content-length", "5"),
        ("user-agent", "gateway-test"),
    ] {
        assert_eq!(echoed(&echo, name), [expected], "{name} upstream");
    }

    for method in ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = call(&app, method.clone(), "/gw/render", &c.secret)
            .send()
            .await
            .unwrap();
        let echo: Value = response.json().await.unwrap();
        assert_eq!(
            (echo["method"].as_str(), echo["path"].as_str()),
            (Some(method.as_str()), Some("/api"))
        );
        assert_eq!(echo["body_len"], 0);
        assert!(
            echoed(&echo, "transfer-encoding").is_empty(),
            "a bodyless {method} went chunked"
        );
    }
    let head = call(&app, Method::HEAD, "/gw/render/x", &c.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert!(header(&head, "content-length").parse::<u64>().unwrap() > 0);
    assert!(head.bytes().await.unwrap().is_empty());

    let events = events_of(&app, &c.key_id, 7).await;
    let methods: Vec<&str> = events.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(
        methods,
        ["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
    );
    for event in &events {
        assert_eq!(
            (
                event.endpoint.as_str(),
                event.source.as_str(),
                event.status_code
            ),
            ("/gw/render/{tail}", "gateway", 200)
        );
        assert_eq!(event.tenant_id, c.owner.tenant_id.0);
    }
    assert_eq!(events[0].bytes_in, 5);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"http_route="/gw/render""#), "{metrics}");
    crate::helpers::assert_logs_free_of(&[&c.secret]);
    assert_eq!(events[0].user_agent.as_deref(), Some("gateway-test"));
    assert!(events[0].bytes_out > 0 && events[0].latency_us > 0);
}

/// A raw upstream answer carrying every kind of hop-by-hop header.
const HOP_ANSWER: &str = "HTTP/1.1 200 OK\r\n\
    Content-Type: text/plain\r\n\
    Content-Length: 5\r\n\
    Connection: close, X-Hop-Resp\r\n\
    X-Hop-Resp: secret\r\n\
    Keep-Alive: timeout=5\r\n\
    Proxy-Authenticate: Basic realm=\"up\"\r\n\
    Upgrade: foo/1\r\n\
    Trailer: X-Sum\r\n\
    X-End-To-End: kept\r\n\
    \r\n\
    hello";

#[tokio::test]
async fn hop_by_hop_headers_stay_behind_both_ways() {
    let upstream = RawUpstream::start(HOP_ANSWER).await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/"))], |_| {}).await;
    let c = caller(&app, json!({})).await;
    let response = call(&app, Method::GET, "/gw/hop", &c.secret)
        .header("Connection", "keep-alive, X-Hop-Req")
        .header("X-Hop-Req", "secret")
        .header("Keep-Alive", "timeout=5")
        .header("TE", "trailers")
        .header("Trailer", "X-Sum")
        .header("Proxy-Authorization", "Basic c2VjcmV0")
        .header("Upgrade", "foo/1")
        .header("X-Hop-E2E", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    for name in [
        "x-hop-resp",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
        "trailer",
        "connection",
        "transfer-encoding",
    ] {
        assert_eq!(header(&response, name), "", "{name} reached the client");
    }
    assert_eq!(header(&response, "x-end-to-end"), "kept");
    assert_eq!(header(&response, "content-length"), "5");
    assert_eq!(response.text().await.unwrap(), "hello");

    let heads = upstream.heads();
    assert_eq!(heads.len(), 1);
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /hop http/1.1\r\n"), "{head}");
    for name in [
        "connection:",
        "x-hop-req:",
        "keep-alive:",
        "te:",
        "trailer:",
        "proxy-authorization:",
        "upgrade:",
        "x-api-key:",
        "transfer-encoding:",
    ] {
        assert!(
            !head.contains(&format!("\r\n{name}")),
            "{name} went upstream:\n{head}"
        );
    }
    assert!(head.contains("\r\nx-hop-e2e: kept\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nhost: {}\r\n", upstream.addr)),
        "{head}"
    );
    events_of(&app, &c.key_id, 1).await;
}

#[tokio::test]
async fn paths_map_on_segment_boundaries_and_other_paths_keep_their_answers() {
    let upstream = Upstream::start().await;
    let mut raw = route("/gw/raw", upstream.url("/base"));
    raw.strip_prefix = false;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api/")), raw], |_| {}).await;
    let c = caller(&app, json!({})).await;
    let path_upstream = |path: &'static str| {
        let request = call(&app, Method::GET, path, &c.secret).send();
        async move {
            let echo: Value = request.await.unwrap().json().await.unwrap();
            echo["path"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(path_upstream("/gw").await, "/api/");
    assert_eq!(path_upstream("/gw/").await, "/api/");
    assert_eq!(path_upstream("/gw/a%2Fb/c").await, "/api/a%2Fb/c");
    assert_eq!(path_upstream("/gw/raw/x").await, "/base/gw/raw/x");
    assert_eq!(path_upstream("/gw/rawer").await, "/api/rawer");
    // Dot segments never climb above the upstream's path (sent raw: clients resolve them).
    assert_eq!(
        raw_get_path(&app, "/gw/a/../../../admin", &c.secret).await,
        "/api/admin"
    );
    assert_eq!(
        raw_get_path(&app, "/gw/raw/%2e%2e/%2E%2e/x", &c.secret).await,
        "/base/gw/raw/x"
    );

    for path in ["/gwx", "/gw-nope/x", "/v1/nope"] {
        let response = call(&app, Method::GET, path, &c.secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json"
        );
    }
    let wrong_method = call(&app, Method::PUT, "/v1/verify", &c.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(header(&wrong_method, "allow"), "POST");
    let events = events_of(&app, &c.key_id, 7).await;
    let templates: Vec<&str> = events.iter().map(|e| e.endpoint.as_str()).collect();
    assert_eq!(
        templates,
        [
            "/gw/*",
            "/gw/*",
            "/gw/*",
            "/gw/raw/*",
            "/gw/*",
            "/gw/*",
            "/gw/raw/*"
        ]
    );
}

/// Sends `GET path` as written (no client-side dot resolution) and returns the path the echo
/// upstream saw.
async fn raw_get_path(app: &crate::helpers::TestApp, path: &str, secret: &str) -> String {
    let host = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {secret}\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let echo: Value = serde_json::from_str(body).unwrap();
    echo["path"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn upstream_answers_pass_through_untouched_whatever_their_status() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |_| {}).await;
    let c = caller(&app, json!({})).await;
    for code in [500u16, 404, 503, 201] {
        let response = call(&app, Method::GET, &format!("/gw/status/{code}"), &c.secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(header(&response, "content-type"), "text/plain");
        assert_rate_limit_headers(&response, 100);
        assert_eq!(
            response.text().await.unwrap(),
            format!("upstream says {code}")
        );
    }
    let no_content = call(&app, Method::GET, "/gw/status/204", &c.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(no_content.status().as_u16(), 204);
    assert!(no_content.bytes().await.unwrap().is_empty());

    // Encoding is the upstream's business: its answer is not compressed on the way back.
    let response = call(&app, Method::GET, "/gw/echo", &c.secret)
        .header("Accept-Encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "content-encoding"), "");
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echoed(&echo, "accept-encoding"), ["gzip, br"]);

    let events = events_of(&app, &c.key_id, 6).await;
    let statuses: Vec<i16> = events.iter().map(|e| e.status_code).collect();
    assert_eq!(statuses, [500, 404, 503, 201, 204, 200]);
    assert_eq!(events[0].bytes_out, "upstream says 500".len() as i64);
}
