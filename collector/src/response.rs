//! The few kinds of answer the collector gives, built from static parts where possible.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, LOCATION, X_FRAME_OPTIONS,
};
use http::{Response, StatusCode};
use http_body_util::Full;

pub type Body = Full<Bytes>;

/// The 43-byte transparent 1×1 GIF.
pub const GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// The pixel's answer, whatever happened to the hit.
pub fn gif() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(GIF)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-store, max-age=0"),
    );
    response
}

/// `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An empty answer with `status` (`204` for a stored beacon, a preflight).
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An HTML page with `status` that loads nothing and cannot be framed (no other site can put
/// it under a visitor's click).
pub fn html(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = text(status, "text/html; charset=utf-8", body);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `303 See Other` to `location`.
pub fn redirect(location: &str) -> Response<Body> {
    let mut response = text(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// A plain-text answer.
pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gif_is_a_valid_43_byte_gif89a() {
        assert_eq!(GIF.len(), 43);
        assert!(GIF.starts_with(b"GIF89a"));
        assert_eq!(GIF.last(), Some(&b';'), "GIF trailer");
        assert_eq!(u16::from_le_bytes([GIF[6], GIF[7]]), 1, "width");
        assert_eq!(u16::from_le_bytes([GIF[8], GIF[9]]), 1, "height");
    }

    #[tokio::test]
    async fn json_errors_carry_the_reason() {
        use http_body_util::BodyExt;
        let r = json_error(StatusCode::BAD_REQUEST, "bad \"site\"");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"], "bad \"site\"");
    }
}
