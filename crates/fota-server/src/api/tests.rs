use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::json_errors;
use crate::error::AppError;

/// A router whose one route answers `status` with an empty, non-JSON body, as the limit and
/// timeout layers and axum's rejections do.
fn bare(status: StatusCode) -> axum::Router {
    axum::Router::new()
        .route("/", get(move || async move { status }))
        .layer(axum::middleware::map_response(json_errors))
}

async fn body(response: axum::response::Response) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn answers_made_by_layers_carry_the_body_the_handlers_errors_carry() {
    let cases = [
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        ),
        (
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "request took too long",
        ),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        ),
        (StatusCode::NOT_FOUND, "not_found", "not found"),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "unsupported media type",
        ),
        (StatusCode::BAD_REQUEST, "bad_request", "bad request"),
        (StatusCode::LENGTH_REQUIRED, "bad_request", "bad request"),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        ),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "internal server error",
        ),
    ];
    for (status, code, message) in cases {
        let request = Request::get("/").body(Body::empty()).unwrap();
        let answer = bare(status).oneshot(request).await.unwrap();
        assert_eq!(answer.status(), status, "the layer's status is kept");
        assert_eq!(
            answer.headers()[header::CACHE_CONTROL],
            "no-store",
            "{status}"
        );
        let got = body(answer).await;
        assert_eq!(
            got,
            serde_json::json!({ "error": { "code": code, "message": message } }),
            "{status}"
        );
        let ours = AppError::from_status(status).into_response();
        assert_eq!(ours.status(), status, "{status}");
        assert_eq!(body(ours).await, got, "{status}: one mapping, one body");
    }
}
