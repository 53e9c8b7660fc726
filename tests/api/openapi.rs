//! The committed `openapi/openapi.json` is exactly what the code generates, and every
//! operation is documented (summary and tag).

use tollgate::http::openapi::{SPEC_PATH, spec, spec_json};

#[test]
fn committed_spec_matches_the_code() {
    let path = format!("{}/{SPEC_PATH}", env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == spec_json(),
        "{SPEC_PATH} is out of date: run `cargo run -- openapi` and commit the result"
    );
}

#[test]
fn every_operation_has_a_summary_a_tag_and_an_operation_id() {
    let doc = serde_json::to_value(spec()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            let summary = op["summary"].as_str().unwrap_or_default();
            assert!(!summary.trim().is_empty(), "{what} has no summary");
            let tags = op["tags"].as_array().map(Vec::len).unwrap_or(0);
            assert!(tags > 0, "{what} has no tag");
            assert!(
                op["operationId"].as_str().is_some(),
                "{what} has no operationId"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{what} documents no response"
            );
        }
    }
}
