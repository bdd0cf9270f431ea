//! `/optout` and `/optin`: the visitor's own choice, kept in the `ff_optout` cookie.
//!
//! `GET` only shows a confirmation page saying what the button does; the choice changes only by
//! the `POST` that page's form sends, checked to come from the collector's own origin
//! ([`same_origin`]). When the change was a `GET`, any site could undo a visitor's opt-out by
//! sending their browser to `/optin` (a link, a redirect, an image). The pages cannot be framed,
//! so no site can put the button under a visitor's click either.

use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};

use super::App;
use crate::hit::privacy::{RETURN_PARAM, safe_return, same_origin};
use crate::metrics::Rejection;
use crate::response::{self, Body};

const HEAD: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\">";

/// What each page says, for opting out (`true`) and in.
fn texts(out: bool) -> (&'static str, &'static str, &'static str) {
    if out {
        (
            "Opt out of visit tracking",
            "<p>If you press the button, this browser gets a cookie named <code>ff_optout</code> and \
its visitor cookie <code>ff_id</code> is deleted. From then on, none of this browser's visits \
to the sites using this analytics service are recorded: no page views, no time on page, no \
address, no link to a customer account.</p>\
<p>The choice is kept only in that cookie: if you clear your cookies, or use another browser, \
opt out there again. Nothing changes until you press the button.</p>",
            "Opt out",
        )
    } else {
        (
            "Opt in to visit tracking again",
            "<p>If you press the button, the <code>ff_optout</code> cookie is deleted from this \
browser, and its visits are recorded again as the site's privacy policy describes.</p>\
<p>Nothing changes until you press the button.</p>",
            "Opt in again",
        )
    }
}

fn done(out: bool) -> &'static str {
    if out {
        "<p>You have opted out. This browser's visits are no longer recorded, and its visitor \
cookie has been removed. The choice is kept in a cookie named <code>ff_optout</code>; if you \
clear your cookies, opt out again.</p>"
    } else {
        "<p>You have opted in again. This browser's visits are recorded as the site's privacy \
policy describes.</p>"
    }
}

impl App {
    /// `/optout` (`out`) and `/optin`: `GET` shows the confirmation page, `POST` from it sets
    /// or clears `ff_optout` (opting out also expires `ff_id`), then shows that it is done or
    /// goes back to `return` when it is on the site the visitor came from ([`safe_return`]).
    pub(super) fn opt<B>(&self, req: &Request<B>, out: bool) -> Response<Body> {
        let query = req.uri().query().unwrap_or_default();
        let return_to = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == RETURN_PARAM)
            .map(|(_, v)| v);
        let (title, explanation, button) = texts(out);
        if req.method() != Method::POST {
            // The return URL is checked against where the visitor came from, and handed on in
            // the form's action.
            let action = match safe_return(return_to.as_deref(), req.headers()) {
                Some(url) => format!(
                    "{}?{}",
                    if out { "optout" } else { "optin" },
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair(RETURN_PARAM, url.as_str())
                        .finish()
                ),
                None => (if out { "optout" } else { "optin" }).to_owned(),
            };
            return response::html(
                StatusCode::OK,
                format!(
                    "{HEAD}<title>{title}</title><h1>{title}</h1>{explanation}\
<form method=\"post\" action=\"{action}\"><button type=\"submit\">{button}</button></form></html>\n"
                ),
            );
        }
        if !same_origin(req.headers()) {
            self.metrics.rejected(Rejection::ForeignOptChange);
            tracing::info!(
                out,
                "opt-out change refused: not sent by the confirmation page"
            );
            return response::html(
                StatusCode::FORBIDDEN,
                format!(
                    "{HEAD}<title>{title}</title><h1>Nothing was changed</h1>\
<p>This request did not come from the confirmation page, so your choice stays as it was. \
To change it, open the confirmation page yourself and press its button.</p></html>\n"
                ),
            );
        }
        // The form came from this origin's own page, which only hands on a checked return URL;
        // it is still only ever an http(s) URL.
        let back = return_to
            .and_then(|r| url::Url::parse(&r).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let mut answer = match back {
            Some(url) => response::redirect(url.as_str()),
            None => response::html(
                StatusCode::OK,
                format!(
                    "{HEAD}<title>{title}</title><h1>Done</h1>{}</html>\n",
                    done(out)
                ),
            ),
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
