//! The dashboard's static files, embedded in the binary: served with a strong `ETag` (`304`
//! when current) and linked with it as a version, so a browser keeps them until they change.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{holds, strong_etag};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "style.css",
            "text/css; charset=utf-8",
            include_bytes!("assets/style.css").as_slice(),
        ),
        (
            "icon.svg",
            "image/svg+xml",
            include_bytes!("assets/icon.svg").as_slice(),
        ),
    ]
    .into_iter()
    .map(|(name, content_type, body)| Asset {
        name,
        content_type,
        body,
        etag: strong_etag(body),
    })
    .collect()
});

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The URL of asset `name`, versioned by its ETag.
pub fn url(name: &str) -> String {
    match find(name) {
        Some(a) => format!("/assets/{name}?v={}", a.etag.trim_matches('"')),
        None => format!("/assets/{name}"),
    }
}

pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = find(&name) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let current = holds(&headers, &asset.etag);
    let etag = HeaderValue::from_str(&asset.etag).expect("hex digits are a valid header");
    let cache = HeaderValue::from_static("public, max-age=86400");
    if current {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
