//! `GET /readyz` and `GET /metrics`: what operators and load balancers ask.

use http::{Response, StatusCode};

use super::App;
use crate::response::{self, Body};

impl App {
    /// `GET /readyz`: 200 while hits are accepted and kept, 503 with the reason otherwise. An
    /// unreachable ClickHouse alone does not fail it: the spool keeps the hits meanwhile.
    pub(super) fn readiness(&self) -> Response<Body> {
        if !self.status.accepting() {
            return response::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "spool full: ClickHouse unreachable for long\n",
            );
        }
        if self.queue.depth() >= self.queue.capacity() {
            return response::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "queue full\n",
            );
        }
        response::text(StatusCode::OK, "text/plain", "ready\n")
    }

    pub(super) fn metrics_text(&self) -> Response<Body> {
        self.metrics.queue_depth.set(self.queue.depth() as i64);
        let clients = self.rate_limit.as_ref().map_or(0, |limit| limit.clients());
        self.metrics.rate_limit_clients.set(clients as i64);
        response::text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            self.metrics.render(),
        )
    }
}
