//! The tracker script served at `GET /t.js` (source: `collector/assets/t.js`).
//!
//! The script is embedded in the binary, so it always matches the collector's `/e`. It is
//! cached by browsers for an hour and revalidated with its ETag (a hash of its text), so a new
//! release reaches every page within the hour while revalidations cost a 304.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::response::Body;

/// The tracker, as written (small enough not to need a minifier: under 1.5 KiB gzipped).
pub const SCRIPT: &str = include_str!("../assets/t.js");

/// A strong ETag: the 64-bit FNV-1a hash of the script.
static ETAG_VALUE: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = SCRIPT.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    HeaderValue::try_from(format!("\"{hash:016x}\""))
        .expect("hex in quotes is a valid header value")
});

/// The answer to `GET /t.js`: the script, or `304` when the browser's copy is current.
pub fn response(request_headers: &HeaderMap) -> Response<Body> {
    let current = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == ETAG_VALUE.as_bytes());
    let mut response = if current {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(SCRIPT.as_bytes())));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        r.headers_mut()
            .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        r
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, ETAG_VALUE.clone());
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_small() {
        // Raw size bounds the gzipped size from above, with room: the contract asks ≤ 2 KiB gzipped.
        assert!(SCRIPT.len() <= 3 * 1024, "t.js is {} bytes", SCRIPT.len());
    }

    #[test]
    fn etag_revalidation() {
        let fresh = response(&HeaderMap::new());
        assert_eq!(fresh.status(), StatusCode::OK);
        let etag = fresh.headers()[ETAG].clone();
        assert!(etag.to_str().unwrap().starts_with('"'));
        for sent in [
            etag.to_str().unwrap().to_owned(),
            format!("\"other\", W/{}", etag.to_str().unwrap()),
            "*".into(),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_str(&sent).unwrap());
            let answer = response(&headers);
            assert_eq!(answer.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(answer.headers()[ETAG], etag);
        }
        let mut stale = HeaderMap::new();
        stale.insert(
            IF_NONE_MATCH,
            HeaderValue::from_static("\"0000000000000000\""),
        );
        assert_eq!(response(&stale).status(), StatusCode::OK);
    }
}
