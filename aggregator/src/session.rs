//! Dashboard sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie that expires, and
//! the report token it stands for, kept only in this process's memory.
//!
//! The token itself never goes into the cookie, so a stolen cookie dies with the session (at
//! sign-out, after [`SESSION_TTL`], or when `serve` restarts), and the token is checked again on
//! every request, so revoking it ends its sessions at once. Memory is bounded: past
//! [`MAX_SESSIONS`] the oldest session is dropped. Rejected: a signed cookie holding the token
//! (it outlives a sign-out) and a table in ClickHouse (sessions would outlive a restart of the
//! server that made them, for no user-visible gain).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cookie::{Cookie, SameSite};
use rand::RngCore as _;

/// The session cookie's name.
pub const COOKIE: &str = "ff_session";
/// How long a sign-in lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once.
const MAX_SESSIONS: usize = 10_000;

struct Entry {
    token: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Entry>>);

impl Sessions {
    /// A new session for `token`; returns its id.
    pub fn open(&self, token: &str) -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Entry {
                token: token.to_owned(),
                expires: now + SESSION_TTL,
            },
        );
        id
    }

    /// The token of a live session.
    pub fn token(&self, id: &str) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.token.clone())
    }

    pub fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// The session id a request's `Cookie` headers carry.
pub fn id_from(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` value that keeps session `id` (or, with `None`, removes it). `secure` when
/// the dashboard is reached over HTTPS (through the TLS proxy).
pub fn set_cookie(id: Option<&str>, secure: bool) -> String {
    let mut c = Cookie::build((COOKIE, id.unwrap_or("").to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure);
    c = match id {
        Some(_) => c.max_age(cookie::time::Duration::seconds(SESSION_TTL.as_secs() as i64)),
        None => c.max_age(cookie::time::Duration::ZERO),
    };
    c.build().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_its_token_until_closed() {
        let s = Sessions::default();
        let id = s.open("fft_x");
        assert_eq!(id.len(), 64);
        assert_eq!(s.token(&id).as_deref(), Some("fft_x"));
        assert_ne!(s.open("fft_x"), id, "every sign-in gets a new id");
        s.close(&id);
        assert_eq!(s.token(&id), None);
        assert_eq!(s.token("guess"), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_expires() {
        let set = set_cookie(Some("abc"), true);
        for part in [
            "ff_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(set.contains("Max-Age=28800"), "{set}");
        let gone = set_cookie(None, false);
        assert!(
            gone.contains("Max-Age=0") && !gone.contains("Secure"),
            "{gone}"
        );
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=b; ff_session=xyz".parse().unwrap());
        assert_eq!(id_from(&h).as_deref(), Some("xyz"));
    }
}
