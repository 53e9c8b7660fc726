//! The ceiling for the hot-path load run: actix-web answering `GET /v1/ping` with the same
//! JSON shape as Tollgate, with no key check, limiter or metering at all.
//!
//! `cargo run --release --example bare_ping -- 127.0.0.1:18090`

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    HttpServer::new(|| {
        App::new().route(
            "/v1/ping",
            web::get().to(|| async {
                HttpResponse::Ok().json(serde_json::json!({
                    "pong": true,
                    "key_id": "key_00000000000000000000000000000000",
                    "tenant_id": "tnt_00000000000000000000000000000000",
                }))
            }),
        )
    })
    .bind(addr)?
    .run()
    .await
}
