//! `GET /readyz`: what load balancers ask (`/metrics` has an address of its own,
//! [`crate::metrics_server`]).

use std::sync::atomic::Ordering;

use http::{Response, StatusCode};

use super::App;
use crate::metrics::Rejection;
use crate::response::{self, Body};

impl App {
    /// `GET /readyz`: 200 while hits are accepted and kept, 503 with the reason otherwise. An
    /// unreachable ClickHouse alone does not fail it (the spool keeps the hits meanwhile), nor
    /// does a quarantined batch (it is kept too); both are said in the body.
    pub(super) fn readiness(&self) -> Response<Body> {
        let refused = match self.status.refusal() {
            Some(Rejection::SpoolFull) => Some("spool full: ClickHouse unreachable for long\n"),
            Some(_) => Some(
                "spool write failing (disk full or I/O error): hits refused until the disk takes writes again\n",
            ),
            None if self.queue.is_full() => Some("queue full\n"),
            None => None,
        };
        if let Some(reason) = refused {
            return response::text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", reason);
        }
        let mut body = String::from("ready\n");
        if !self.status.schema_ready.load(Ordering::Relaxed) {
            body += "ClickHouse schema not applied yet (ClickHouse unreachable?): hits wait in the spool\n";
        } else if !self.status.insert_ok.load(Ordering::Relaxed) {
            body += "ClickHouse inserts failing: hits wait in the spool\n";
        }
        let quarantined = self.status.quarantined.load(Ordering::Relaxed);
        if quarantined > 0 {
            body += &format!(
                "{quarantined} batches ClickHouse refused are in quarantine: fix the cause, then run `footfall-collector spool replay-quarantine`\n"
            );
        }
        response::text(StatusCode::OK, "text/plain", body)
    }
}
