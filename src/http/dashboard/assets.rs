//! The dashboard's static files, embedded at build time from `dashboard/static/`: served
//! with their MIME type and an ETag (the file's SHA-256), revalidated on every use so a new
//! binary's files are picked up at once.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, ETag, EntityTag},
    web,
};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "dashboard/static/"]
struct Assets;

/// Appended to asset URLs by the templates (`?v=`), so caches never mix two releases.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{path:.*}", web::get().to(serve));
}

async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(file) = Assets::get(&path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("No dashboard file {path}."));
    };
    let tag = EntityTag::new_strong(hex::encode(file.metadata.sha256_hash()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag.to_string()));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(ETag(tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        return response.finish();
    }
    response
        .content_type(file.metadata.mimetype())
        .body(file.data.into_owned())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::Assets;

    /// The vendored libraries are exactly the files their manifest names: nothing edited,
    /// nothing added unlisted.
    #[test]
    fn vendored_files_match_their_sha256_manifest() {
        let manifest = Assets::get("vendor/SHA256SUMS").expect("vendor/SHA256SUMS is embedded");
        let manifest = std::str::from_utf8(&manifest.data).expect("the manifest is text");
        let mut listed = Vec::new();
        for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
            let (hash, path) = line.split_once("  ").expect("`<sha256>  <path>` lines");
            let file = Assets::get(&format!("vendor/{path}"))
                .unwrap_or_else(|| panic!("{path} is listed but not vendored"));
            assert_eq!(
                hex::encode(Sha256::digest(&file.data)),
                hash,
                "{path} was changed"
            );
            listed.push(format!("vendor/{path}"));
        }
        let unlisted: Vec<_> = Assets::iter()
            .filter(|p| p.starts_with("vendor/"))
            .filter(|p| !matches!(p.as_ref(), "vendor/SHA256SUMS" | "vendor/README.md"))
            .filter(|p| !listed.iter().any(|l| l == p.as_ref()))
            .collect();
        assert!(
            unlisted.is_empty(),
            "vendored but not in the manifest: {unlisted:?}"
        );
    }
}
