//! The dashboard: server-rendered pages (askama templates from `dashboard/templates/`) and
//! their static files (`dashboard/static/`, embedded in the binary), behind the session
//! cookie ([`super::session`]). The pages are shells: small ES modules fill them from the
//! JSON API, authenticated by the same cookie. Every answer carries a strict
//! Content-Security-Policy (`script-src 'self'`: no inline script anywhere).

use actix_web::{middleware::DefaultHeaders, web};

mod assets;
mod login;
mod pages;

/// The policy every dashboard answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::redirect("/", "/dashboard/").see_other())
        .service(web::redirect("/dashboard", "/dashboard/").see_other())
        .service(
            web::scope("/dashboard")
                .wrap(security_headers())
                .configure(assets::configure)
                .configure(login::configure)
                .configure(pages::configure),
        );
}

fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
}
