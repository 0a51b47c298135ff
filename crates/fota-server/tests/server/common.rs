//! Helpers shared by the server tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use fota_server::AppState;
use fota_server::blobs::LocalBlobStore;
use fota_server::config::Config;
use fota_server::store::SqliteStore;
use fota_server::trust::{LegacyKey, Trust};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// A state over a fresh temp data folder.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub app: Router,
    pub admin: String,
}

pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::with_data(dir);
    c.listen = "127.0.0.1:0".into();
    c
}

pub async fn fixture_with(
    tweak: impl FnOnce(&mut Config),
    trust: Option<Trust>,
    legacy: Option<&[u8]>,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let store = SqliteStore::open(&cfg.db_path()).await.unwrap();
    let blobs = LocalBlobStore::open(cfg.blob_dir()).unwrap();
    let state = AppState::from_parts(
        cfg,
        Arc::new(store),
        Arc::new(blobs),
        trust,
        legacy.map(LegacyKey::from_bytes),
    );
    let admin = "test-admin-token".to_owned();
    state.bootstrap_admin(Some(&admin)).await.unwrap();
    let app = fota_server::router(state.clone());
    Fixture {
        dir,
        state,
        app,
        admin,
    }
}

pub async fn fixture() -> Fixture {
    fixture_with(|_| {}, None, None).await
}

/// One answer, body collected.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status and the JSON error shape; returns the error code.
    pub fn error(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        let code = v["error"]["code"].as_str().expect("error.code").to_owned();
        assert!(v["error"]["message"].is_string(), "error.message in {v}");
        code
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn req(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(body.into()).unwrap()
}

pub async fn get(app: &Router, path: &str, token: Option<&str>) -> Answer {
    send(app, req(Method::GET, path, token, Body::empty())).await
}

pub async fn post_json(
    app: &Router,
    path: &str,
    token: Option<&str>,
    json: &serde_json::Value,
) -> Answer {
    let mut r = req(Method::POST, path, token, json.to_string());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    send(app, r).await
}

pub async fn post_raw(
    app: &Router,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    send(app, req(Method::POST, path, token, body)).await
}

/// Makes an operator token of `role` with the admin token.
pub async fn token(f: &Fixture, role: &str) -> String {
    let a = post_json(
        &f.app,
        "/api/v2/tokens",
        Some(&f.admin),
        &serde_json::json!({ "name": role, "role": role }),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    a.json()["token"].as_str().unwrap().to_owned()
}
