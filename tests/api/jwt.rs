//! Attacks on access tokens against `GET /v1/me`: `alg: none`, other algorithms, bad
//! signatures, expired or claim-less tokens, wrong audience or issuer, malformed tokens,
//! unknown subjects and foreign tenants are all a 401 problem; and no password, token or
//! password hash ever reaches the log.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, crypto};
use serde_json::{Value, json};
use tollgate::{
    auth::users,
    demo,
    ids::{TenantId, UserId},
};
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_logs_free_of, assert_problem, captured_logs, login, new_tenant, spawn_app,
};

const INVALID: &str = "The access token is invalid or expired.";
// What `auth::authenticate` answers for a valid token whose tenant the user is not in.
const NOT_A_MEMBER: &str = "You are no longer a member of this token's tenant.";

/// The demo owner logged in, and what this test needs to forge tokens for the app.
struct Session {
    app: TestApp,
    token: String,
    /// The claims of `token`, as JSON.
    claims: Value,
}

impl Session {
    async fn start() -> Self {
        let app = spawn_app().await;
        let token = login(&app, demo::OWNER_EMAIL).await;
        let payload = token.split('.').nth(1).expect("a JWT has a payload");
        let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        Self { app, token, claims }
    }

    fn secret(&self) -> &[u8] {
        self.app.state.settings.auth.jwt_secret.expose().as_bytes()
    }

    /// The login token's claims with `changes` applied; a `null` removes the claim.
    fn claims_with(&self, changes: Value) -> Value {
        let mut claims = self.claims.clone();
        let map = claims.as_object_mut().unwrap();
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => map.remove(name),
                _ => map.insert(name.clone(), value.clone()),
            };
        }
        claims
    }

    /// `claims` signed HS256 with the app's own secret: only the claims are wrong.
    fn signed(&self, claims: &Value) -> String {
        sign(&header("HS256"), claims, Algorithm::HS256, self.secret())
    }

    async fn assert_accepted(&self, token: &str, case: &str) {
        let status = self.app.get_as("/v1/me", token).await.status().as_u16();
        assert_eq!(status, 200, "{case}: a valid token must be accepted");
    }

    async fn assert_rejected(&self, token: &str, case: &str) {
        self.assert_rejected_with(token, case, INVALID).await;
    }

    async fn assert_rejected_with(&self, token: &str, case: &str, detail: &str) {
        let response = self.app.get_as("/v1/me", token).await;
        assert_eq!(response.status().as_u16(), 401, "{case}: not rejected");
        let body = assert_problem(response, 401).await;
        assert_eq!(body["detail"], detail, "{case}");
    }
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "JWT"})
}

fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// `header.claims` signed with `alg` (which need not be the algorithm the header names).
fn sign(header: &Value, claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    let message = format!("{}.{}", segment(header), segment(claims));
    format!("{message}.{}", mac(&message, alg, secret))
}

/// The base64url HMAC of `message`.
fn mac(message: &str, alg: Algorithm, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret);
    crypto::sign(message.as_bytes(), &key, alg).expect("HMAC signs")
}

/// `token` with its signature replaced.
fn with_signature(token: &str, signature: &str) -> String {
    let (message, _) = token.rsplit_once('.').unwrap();
    format!("{message}.{signature}")
}

/// `text` with the base64url character at `index` replaced by the one whose value is
/// `value ^ mask` (mask 1 on the last character of a 32-byte MAC only touches padding bits).
fn flip(text: &str, index: usize, mask: u8) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = text.as_bytes().to_vec();
    let value = ALPHABET.iter().position(|c| *c == bytes[index]).unwrap() as u8;
    bytes[index] = ALPHABET[usize::from(value ^ mask)];
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn a_valid_token_and_a_faithful_forgery_are_accepted() {
    let s = Session::start().await;
    s.assert_accepted(&s.token, "the login token").await;
    // Proves the forging helpers work, so every rejection below is about the attack alone.
    s.assert_accepted(
        &s.signed(&s.claims),
        "the login claims re-signed by the test",
    )
    .await;
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let s = Session::start().await;
    let signature = s.token.rsplit_once('.').unwrap().1;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned = format!("{}.{}.", segment(&header(alg)), segment(&s.claims));
        s.assert_rejected(&unsigned, &format!("alg {alg}, empty signature"))
            .await;
        let resigned = with_signature(&unsigned, signature);
        s.assert_rejected(&resigned, &format!("alg {alg}, the real signature"))
            .await;
    }
}

#[tokio::test]
async fn other_algorithms_are_rejected_even_with_the_right_secret() {
    let s = Session::start().await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let name = format!("{alg:?}");
        let token = sign(&header(&name), &s.claims, alg, s.secret());
        s.assert_rejected(&token, &format!("{name} with the same secret"))
            .await;
    }
    for label in ["RS256", "PS256", "ES256", "EdDSA"] {
        let token = sign(&header(label), &s.claims, Algorithm::HS256, s.secret());
        s.assert_rejected(&token, &format!("{label} header, HS256 signature"))
            .await;
    }
}

#[tokio::test]
async fn bad_signatures_are_rejected() {
    let s = Session::start().await;
    let signature = s.token.rsplit_once('.').unwrap().1;
    let later = s.signed(&s.claims_with(json!({"exp": s.claims["exp"].as_i64().unwrap() + 1})));
    let cases = [
        ("a flipped character", flip(signature, 10, 0b10_0000)),
        (
            "different padding bits in the last character",
            flip(signature, signature.len() - 1, 1),
        ),
        ("an empty signature", String::new()),
        (
            "another token's signature",
            later.rsplit_once('.').unwrap().1.to_owned(),
        ),
        ("all `A`s", "A".repeat(signature.len())),
    ];
    for (case, bad) in cases {
        assert_ne!(bad, signature, "{case}: the signature must differ");
        s.assert_rejected(&with_signature(&s.token, &bad), case)
            .await;
    }
    let other = sign(&header("HS256"), &s.claims, Algorithm::HS256, b"other");
    s.assert_rejected(&other, "signed with another secret")
        .await;
    // Escalation: the platform admin's id in the payload, the owner's signature kept.
    let admin = users::find_by_email(&s.app.state.db, demo::ADMIN_EMAIL)
        .await
        .unwrap()
        .expect("the demo admin exists");
    let admin_id = UserId::from(admin.id).to_string();
    let tampered = s.claims_with(json!({"sub": admin_id}));
    let message = format!("{}.{}", segment(&header("HS256")), segment(&tampered));
    s.assert_rejected(
        &format!("{message}.{signature}"),
        "tampered payload, old signature",
    )
    .await;
}

#[tokio::test]
async fn expired_tokens_and_tokens_without_exp_are_rejected() {
    let s = Session::start().await;
    let now = Utc::now().timestamp();
    let cases = [
        (
            "expired a minute ago",
            json!({"iat": now - 120, "exp": now - 60}),
        ),
        ("expired 10 s ago (leeway is 5 s)", json!({"exp": now - 10})),
        ("exp 0", json!({"exp": 0})),
        ("no exp", json!({"exp": null})),
        ("exp not a number", json!({"exp": (now + 3600).to_string()})),
    ];
    for (case, changes) in cases {
        s.assert_rejected(&s.signed(&s.claims_with(changes)), case)
            .await;
    }
}

#[tokio::test]
async fn a_wrong_or_missing_audience_or_issuer_is_rejected() {
    let s = Session::start().await;
    let auth = &s.app.state.settings.auth;
    let cases = [
        ("another audience", json!({"aud": "someone-else"})),
        ("no aud", json!({"aud": null})),
        (
            "aud in other case",
            json!({"aud": auth.jwt_audience.to_uppercase()}),
        ),
        ("another issuer", json!({"iss": "https://evil.example"})),
        ("no iss", json!({"iss": null})),
        (
            "iss in other case",
            json!({"iss": auth.jwt_issuer.to_uppercase()}),
        ),
    ];
    for (case, changes) in cases {
        s.assert_rejected(&s.signed(&s.claims_with(changes)), case)
            .await;
    }
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let s = Session::start().await;
    let (message, signature) = s.token.rsplit_once('.').unwrap();
    let shapes = [
        ("one segment", "abc".to_owned()),
        ("two segments", message.to_owned()),
        ("four segments", format!("{}.{signature}", s.token)),
        ("empty segments", "..".to_owned()),
        ("garbage base64", "!!!.@@@.###".to_owned()),
        (
            "payload not base64",
            format!("{}.%%%.{signature}", segment(&header("HS256"))),
        ),
    ];
    for (case, token) in shapes {
        s.assert_rejected(&token, case).await;
    }
    // Properly signed, so only the JSON is wrong.
    for claims in [
        json!([]),
        json!("claims"),
        json!(42),
        json!(null),
        json!(true),
    ] {
        let case = format!("claims {claims}");
        s.assert_rejected(&s.signed(&claims), &case).await;
    }
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode("{not json"),
        segment(&s.claims)
    );
    let not_json = format!("{message}.{}", mac(&message, Algorithm::HS256, s.secret()));
    s.assert_rejected(&not_json, "header not JSON").await;
    let array = sign(&json!(["HS256"]), &s.claims, Algorithm::HS256, s.secret());
    s.assert_rejected(&array, "header not an object").await;
}

#[tokio::test]
async fn a_subject_that_is_not_a_user_is_rejected() {
    let s = Session::start().await;
    let cases = [
        (
            "an unknown user id",
            json!({"sub": UserId::new().to_string()}),
        ),
        (
            "the nil user id",
            json!({"sub": UserId::from(Uuid::nil()).to_string()}),
        ),
        ("a tenant id", json!({"sub": s.claims["tid"]})),
        ("a bare name", json!({"sub": "admin"})),
        ("a number", json!({"sub": 1})),
        ("no sub", json!({"sub": null})),
    ];
    for (case, changes) in cases {
        s.assert_rejected(&s.signed(&s.claims_with(changes)), case)
            .await;
    }
}

#[tokio::test]
async fn a_token_for_a_tenant_the_user_is_not_in_is_rejected() {
    let s = Session::start().await;
    let other = new_tenant(&s.app, "other-co").await.to_string();
    let unknown = TenantId::new().to_string();
    for (case, tid) in [("another tenant", other), ("an unknown tenant", unknown)] {
        let token = s.signed(&s.claims_with(json!({"tid": tid})));
        s.assert_rejected_with(&token, case, NOT_A_MEMBER).await;
    }
    let garbage = s.signed(&s.claims_with(json!({"tid": "tnt_nope"})));
    s.assert_rejected(&garbage, "a tid that is not a tenant id")
        .await;
}

#[tokio::test]
async fn logs_hold_no_password_access_token_or_password_hash() {
    let s = Session::start().await;
    s.assert_accepted(&s.token, "the login token").await;
    let wrong: Vec<String> = (0..3)
        .map(|_| format!("wrong-{}", Uuid::new_v4().simple()))
        .collect();
    // Logged with each request's span: proves this test's requests reached the capture.
    let agent = format!("jwt-log-test-{}", Uuid::new_v4().simple());
    for (email, password) in [demo::OWNER_EMAIL, demo::OWNER_EMAIL, "nobody@example.com"]
        .into_iter()
        .zip(&wrong)
    {
        let body = json!({"email": email, "password": password});
        let request = s.app.client.post(s.app.url("/v1/auth/login"));
        let request = request.header("user-agent", &agent).json(&body);
        assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
    }
    let tampered = s.signed(&s.claims_with(json!({"exp": 0})));
    s.assert_rejected(&tampered, "expired").await;

    let owner = users::find_by_email(&s.app.state.db, demo::OWNER_EMAIL)
        .await
        .unwrap()
        .unwrap();
    let hash = owner.password_hash.as_str();
    let digest = hash.rsplit('$').next().unwrap();
    let signature = s.token.rsplit_once('.').unwrap().1;
    let secret = s.app.state.settings.auth.jwt_secret.expose();
    let logs = captured_logs();
    let failures = logs
        .lines()
        .filter(|line| line.contains(&agent) && line.contains("Invalid email or password."));
    assert!(failures.count() >= 3, "the failed logins were captured");
    let mut needles = vec![
        demo::PASSWORD,
        s.token.as_str(),
        signature,
        tampered.as_str(),
    ];
    needles.extend([hash, digest, secret]);
    needles.extend(wrong.iter().map(String::as_str));
    assert_logs_free_of(&needles);
}

#[tokio::test]
async fn assert_logs_free_of_names_the_needle_without_showing_it() {
    let s = Session::start().await;
    s.assert_rejected("abc", "one segment").await;
    let panic = std::panic::catch_unwind(|| assert_logs_free_of(&["absent-needle", INVALID]))
        .expect_err("the needle is in the logs");
    let message = panic.downcast_ref::<String>().expect("a formatted panic");
    assert!(message.contains("needle #1 (`The ac…`"), "{message}");
    assert!(!message.contains(INVALID), "{message}");
}
