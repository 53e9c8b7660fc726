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

/// utoipa keys component schemas by type name and silently keeps one of two types that share
/// a name, so the document then describes the other one wrongly (verify's window state and
/// the analytics window once did). Every `ToSchema` type in `src/` has a name of its own.
#[test]
fn no_two_schema_types_share_a_name() {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut seen: std::collections::HashMap<String, std::path::PathBuf> = Default::default();
    let mut found = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut pending = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[derive(") && line.contains("ToSchema") {
                pending = true;
            } else if pending && line.starts_with("#[schema(") && line.contains("as =") {
                pending = false; // renamed explicitly
            } else if pending && !line.starts_with("#[") && !line.starts_with("///") {
                let item = line
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ");
                let name = item
                    .strip_prefix("struct ")
                    .or_else(|| item.strip_prefix("enum "))
                    .and_then(|rest| {
                        rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                    });
                if let Some(name) = name {
                    found += 1;
                    if let Some(first) = seen.insert(name.to_owned(), file.clone()) {
                        panic!("schema `{name}` is defined in {first:?} and {file:?}");
                    }
                }
                pending = false;
            }
        }
    }
    assert!(
        found > 50,
        "found only {found} ToSchema types: the scan is broken"
    );
}
