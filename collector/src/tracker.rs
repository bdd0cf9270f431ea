//! The tracker script served at `GET /t.js` (source: `collector/assets/t.js`).
//!
//! The script is embedded in the binary, so it always matches the collector's `/e`. It is
//! cached by browsers for an hour and revalidated with its ETag (a hash of its text), so a new
//! release reaches every page within the hour while revalidations cost a 304.
//!
//! It is served without its comments and indentation ([`compact`]): a fifth less gzipped, with
//! no minifier in the build. The source is written so that this is safe: comments only on
//! lines of their own, never `//` or `/*` at the start of a line inside a string.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::response::Body;

/// The tracker, as written.
const SOURCE: &str = include_str!("../assets/t.js");

/// The tracker as served: [`SOURCE`] compacted.
static SCRIPT: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(compact(SOURCE)));

/// The script as `GET /t.js` serves it.
pub fn script() -> &'static [u8] {
    &SCRIPT
}

/// `source` without comment lines, blank lines and indentation.
fn compact(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut in_block = false;
    for line in source.lines().map(str::trim) {
        if in_block {
            in_block = !line.ends_with("*/");
            continue;
        }
        if line.starts_with("/*") {
            in_block = !line.ends_with("*/");
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A strong ETag: the 64-bit FNV-1a hash of the script.
static ETAG_VALUE: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = SCRIPT.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
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
        let mut r = Response::new(Full::new(SCRIPT.clone()));
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
        http::HeaderName::from_static("accept-ch"),
        HeaderValue::from_static(crate::enrich::client_hints::ACCEPT_CH),
    );
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
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&SCRIPT).unwrap();
        let gzipped = gz.finish().unwrap().len();
        assert!(gzipped <= 3 * 1024, "t.js is {gzipped} bytes gzipped");
    }

    #[test]
    fn compacting_drops_only_comments_and_indentation() {
        let source = "/* a\n   b */\n(function() {\n  // why\n  var s = 'a // b';\n\n  f(); /* x */\n})();\n";
        assert_eq!(
            compact(source),
            "(function() {\nvar s = 'a // b';\nf(); /* x */\n})();\n"
        );
        assert!(SCRIPT.len() < SOURCE.len());
        assert!(!SCRIPT.starts_with(b"/*"));
    }

    #[test]
    fn etag_revalidation() {
        let fresh = response(&HeaderMap::new());
        assert_eq!(fresh.status(), StatusCode::OK);
        let etag = fresh.headers()[ETAG].clone();
        assert_eq!(
            fresh.headers()["accept-ch"],
            crate::enrich::client_hints::ACCEPT_CH
        );
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
