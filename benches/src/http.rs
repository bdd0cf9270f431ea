//! A lean HTTP/1.1 keep-alive client: one TCP connection, one request at a time (hyper's
//! `client::conn::http1`, no pool), for the load itself and for the ClickHouse check.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
}

/// What the load generator needs from an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `ff_id=...` from the answer's `Set-Cookie`, ready to be sent back as a `Cookie` header.
    pub visitor_cookie: Option<HeaderValue>,
    pub body: Bytes,
}

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Self, HttpError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| HttpError::Connect { addr, source })?;
        // Requests are small and answered one at a time: Nagle would only add delay.
        stream
            .set_nodelay(true)
            .map_err(|source| HttpError::Connect { addr, source })?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed");
            }
        });
        Ok(Self { sender })
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, HttpError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let visitor_cookie = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .find_map(|value| visitor_cookie(value.as_bytes()));
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            visitor_cookie,
            body,
        })
    }
}

/// `ff_id=ID` from a `Set-Cookie` value, if it sets `ff_id`.
pub fn visitor_cookie(set_cookie: &[u8]) -> Option<HeaderValue> {
    let pair = set_cookie.split(|&b| b == b';').next()?;
    let value = pair.strip_prefix(b"ff_id=")?;
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(pair).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_visitor_cookie_is_taken_from_set_cookie() {
        assert_eq!(
            visitor_cookie(b"ff_id=4Zq; Path=/; HttpOnly").unwrap(),
            "ff_id=4Zq"
        );
        assert_eq!(visitor_cookie(b"ff_id=4Zq").unwrap(), "ff_id=4Zq");
        assert!(visitor_cookie(b"ff_optout=1; Path=/").is_none());
        assert!(visitor_cookie(b"ff_id=; Max-Age=0").is_none());
    }
}
