//! `[gateway]` settings: routes from a TOML file with their defaults, and every unusable value
//! refused at load with the existing one-line error naming the setting.

use std::process::Command;

use tollgate::config::{GatewayRoute, Settings};

use super::route;

#[test]
fn routes_load_from_the_config_file_with_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    let toml = r#"
        [gateway]
        upstream_timeout_ms = 1500

        [[gateway.routes]]
        prefix = "/gw/render"
        upstream = "http://127.0.0.1:9000/api"
        template = "/gw/render/{tail}"

        [[gateway.routes]]
        prefix = "/gw/files"
        upstream = "https://files.internal"
        strip_prefix = false
    "#;
    std::fs::write(&file, toml).unwrap();
    let mut settings = Settings::load(Some(&file)).unwrap();
    settings.data.dir = dir.path().to_path_buf();
    let settings = settings.finalize().unwrap();
    let gateway = &settings.gateway;
    assert_eq!(
        (gateway.upstream_timeout_ms, gateway.connect_timeout_ms),
        (1500, 5000)
    );
    let [render, files] = gateway.routes.as_slice() else {
        panic!("two routes expected: {:?}", gateway.routes);
    };
    assert_eq!(
        (render.template(), render.strip_prefix),
        ("/gw/render/{tail}".into(), true)
    );
    assert_eq!(
        (files.template(), files.strip_prefix),
        ("/gw/files/*".into(), false)
    );
    assert!(Settings::load(None).unwrap().gateway.routes.is_empty());
    assert_eq!(
        Settings::load(None).unwrap().gateway.upstream_timeout_ms,
        30_000
    );
}

/// The setting a finalized configuration with these routes is refused for.
fn refused_setting(routes: Vec<GatewayRoute>, adjust: impl FnOnce(&mut Settings)) -> String {
    let mut settings = Settings::load(None).unwrap();
    settings.gateway.routes = routes;
    adjust(&mut settings);
    match settings.finalize() {
        Ok(_) => panic!("accepted"),
        Err(err) => err.setting,
    }
}

#[test]
fn unusable_routes_and_timeouts_are_refused_naming_the_setting() {
    let up = || "http://127.0.0.1:9000".to_owned();
    for prefix in [
        "gw",
        "/",
        "/gw/",
        "/gw//x",
        "/gw/../x",
        "/gw/{id}",
        "/gw/*",
        "/g w",
        "/v1",
        "/v1/x",
        "/docs",
        "/docs/x",
        "/livez",
        "/readyz",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ] {
        let setting = refused_setting(vec![route(prefix, up())], |_| {});
        assert_eq!(setting, "gateway.routes[0].prefix", "prefix {prefix}");
    }
    let duplicate = vec![
        route("/gw", up()),
        route("/other", up()),
        route("/gw", up()),
    ];
    assert_eq!(
        refused_setting(duplicate, |_| {}),
        "gateway.routes[2].prefix"
    );
    for upstream in [
        "ftp://127.0.0.1/x",
        "not a url",
        "127.0.0.1:9000",
        "http://user:pass@127.0.0.1:9000",
        "http://127.0.0.1:9000/api?x=1",
        "http://127.0.0.1:9000/api#x",
    ] {
        let setting = refused_setting(
            vec![route("/ok", up()), route("/gw", upstream.into())],
            |_| {},
        );
        assert_eq!(setting, "gateway.routes[1].upstream", "upstream {upstream}");
    }
    let mut templated = route("/gw", up());
    templated.template = Some("gw/{tail}".into());
    assert_eq!(
        refused_setting(vec![templated], |_| {}),
        "gateway.routes[0].template"
    );
    let zero = refused_setting(vec![], |s| s.gateway.upstream_timeout_ms = 0);
    assert_eq!(zero, "gateway.upstream_timeout_ms");
    let zero = refused_setting(vec![], |s| s.gateway.connect_timeout_ms = 0);
    assert_eq!(zero, "gateway.connect_timeout_ms");
}

#[test]
fn the_binary_refuses_a_bad_gateway_setting_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    let toml = "[[gateway.routes]]\nprefix = \"/v1/mine\"\nupstream = \"http://127.0.0.1:1\"\n";
    std::fs::write(&file, toml).unwrap();
    let typo = dir.path().join("typo.toml");
    let toml =
        "[[gateway.routes]]\nprefix = \"/gw\"\nupstream = \"http://127.0.0.1:1\"\nstrip = true\n";
    std::fs::write(&typo, toml).unwrap();
    for (config, setting) in [
        (&file, "`gateway.routes[0].prefix`"),
        (&typo, "gateway.routes"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("--config")
            .arg(config)
            .arg("migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TOLLGATE__DATA__DIR", dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(setting), "{stderr}");
    }
}
