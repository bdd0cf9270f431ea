//! `GET /optout` and `GET /optin`: the visitor's own choice, kept in the `ff_optout` cookie.

use http::header::{HeaderValue, SET_COOKIE};
use http::{Request, Response};

use super::App;
use crate::hit::privacy::{RETURN_PARAM, safe_return};
use crate::response::{self, Body};

const OPTED_OUT_PAGE: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Opted out</title>\
<p>You have opted out. This browser's visits are no longer recorded, and its visitor cookie has been removed.</p>\
<p>The choice is kept in a cookie named ff_optout; if you clear your cookies, opt out again.</p></html>\n";
const OPTED_IN_PAGE: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Opted in</title>\
<p>You have opted in again. This browser's visits are recorded as the site's privacy policy describes.</p></html>\n";

impl App {
    /// `GET /optout` (`out`) and `GET /optin`: set or clear `ff_optout` (opting out also expires
    /// `ff_id`), then a confirmation page, or a redirect to `return` when it is on the site the
    /// visitor came from ([`safe_return`]).
    pub(super) fn opt<B>(&self, req: &Request<B>, out: bool) -> Response<Body> {
        let query = req.uri().query().unwrap_or_default();
        let return_to = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == RETURN_PARAM)
            .map(|(_, v)| v);
        let mut answer = match safe_return(return_to.as_deref(), req.headers()) {
            Some(url) => response::redirect(url.as_str()),
            None => response::html(if out { OPTED_OUT_PAGE } else { OPTED_IN_PAGE }),
        };
        let cookies = if out {
            &self.opt_out_cookies.opt_out[..]
        } else {
            std::slice::from_ref(&self.opt_out_cookies.opt_in)
        };
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                answer.headers_mut().append(SET_COOKIE, value);
            }
        }
        answer
    }
}
