//! The audit: one `audit_log` row for everything that reads personal data or tries to take
//! data out, and `footfall-aggregator audit` to read them.
//!
//! Recorded: every export by any path (with its K, ε and the privacy budget left after it),
//! every subject export and erasure, and every refused request (`400`, `401`, `403`, `429`),
//! each with its actor: the API token's name (`-` when no valid token was shown), or
//! `cli:USER` for the operating-system user who ran the command. The subject of a subject
//! request is not recorded: the audit must not keep what an erasure removes.
//!
//! Times are `DateTime64(3)` and days `Date32`, which hold dates far beyond 2149 (where `Date`
//! wraps). The audit is also the privacy budget's ledger ([`spent`]).

use clickhouse::Client;
use serde::{Deserialize, Serialize};

use crate::budget::iso;
use crate::day::Day;
use crate::report::Request;
use crate::{ClickHouseError, ch};

/// What an audit row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    Export,
    SubjectExport,
    SubjectErase,
    Refused,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Export => "export",
            Action::SubjectExport => "subject_export",
            Action::SubjectErase => "subject_erase",
            Action::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub actor: String,
    pub action: String,
    /// The HTTP status answered (200 for what the command line did).
    pub status: u16,
    pub report: String,
    /// Days since the Unix epoch (`Date32`); 0 when not a report.
    pub from_day: i32,
    pub to_day: i32,
    pub site: String,
    pub min_visitors: u32,
    /// ε in thousandths; 0 when no noise was added.
    pub epsilon_thousandths: u32,
    /// The budget left after this export, in thousandths of ε, when noise was added.
    pub budget_left_thousandths: Option<u64>,
    pub rows: u64,
    /// Why a request was refused, or what a subject request touched.
    pub detail: String,
}

/// The actor for the command line: the operating-system user running it.
pub fn cli_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    match user {
        Some(user) => format!("cli:{user}"),
        // SAFETY: getuid has no preconditions and cannot fail.
        None => format!("cli:uid={}", unsafe { libc::getuid() }),
    }
}

pub fn now_secs() -> i64 {
    now_millis() / 1000
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

impl Entry {
    /// A row for `action` by `actor`, now, with every other field empty.
    pub fn new(actor: &str, action: Action, status: u16) -> Self {
        Self {
            at: now_millis(),
            actor: actor.into(),
            action: action.name().into(),
            status,
            report: String::new(),
            from_day: 0,
            to_day: 0,
            site: String::new(),
            min_visitors: 0,
            epsilon_thousandths: 0,
            budget_left_thousandths: None,
            rows: 0,
            detail: String::new(),
        }
    }

    /// An export of `rows` rows of `req`, with the budget left after it.
    pub fn export(actor: &str, req: &Request, rows: u64, budget_left: Option<u64>) -> Self {
        Self {
            report: req.report.name().into(),
            from_day: req.from.since_epoch() as i32,
            to_day: req.to.since_epoch() as i32,
            site: req.site.clone().unwrap_or_default(),
            min_visitors: req.rules.min_visitors,
            epsilon_thousandths: req
                .rules
                .noise
                .as_ref()
                .map_or(0, |n| n.epsilon().thousandths()),
            budget_left_thousandths: budget_left,
            rows,
            ..Self::new(actor, Action::Export, 200)
        }
    }

    /// A refused request: its status and reason.
    pub fn refused(actor: &str, status: u16, reason: &str) -> Self {
        Self {
            detail: reason.into(),
            ..Self::new(actor, Action::Refused, status)
        }
    }

    /// One line for `footfall-aggregator audit`: tab-separated.
    pub fn line(&self) -> String {
        let millis = self.at.rem_euclid(1000);
        let at = iso(self.at.div_euclid(1000));
        let at = format!("{}.{millis:03}Z", at.trim_end_matches('Z'));
        let range = if self.report.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{}..{}",
                Day::from_epoch(i64::from(self.from_day)),
                Day::from_epoch(i64::from(self.to_day))
            )
        };
        let thousandths = |t: u64| (t as f64 / 1000.0).to_string();
        format!(
            "{at}\t{}\t{}\t{}\t{}\t{range}\t{}\tK={}\tε={}\tbudget left={}\t{} rows\t{}",
            self.actor,
            self.action,
            self.status,
            if self.report.is_empty() {
                "-"
            } else {
                &self.report
            },
            if self.site.is_empty() {
                "(all sites)"
            } else {
                &self.site
            },
            self.min_visitors,
            match self.epsilon_thousandths {
                0 => "-".to_owned(),
                e => thousandths(u64::from(e)),
            },
            self.budget_left_thousandths
                .map_or("-".to_owned(), thousandths),
            self.rows,
            self.detail,
        )
    }
}

/// Appends `entry` to the audit.
pub async fn write(client: &Client, entry: &Entry) -> Result<(), ClickHouseError> {
    let mut insert = client
        .insert::<Entry>("audit_log")
        .await
        .map_err(ch("write the audit"))?;
    insert.write(entry).await.map_err(ch("write the audit"))?;
    insert.end().await.map_err(ch("write the audit"))
}

/// Records that `actor` exported `rows` rows of `req`.
pub async fn record(
    client: &Client,
    actor: &str,
    req: &Request,
    rows: u64,
    budget_left: Option<u64>,
) -> Result<(), ClickHouseError> {
    write(client, &Entry::export(actor, req, rows, budget_left)).await
}

/// Thousandths of ε that `actor`'s exports spent since `since` (seconds since the Unix epoch).
pub async fn spent(client: &Client, actor: &str, since: i64) -> Result<u64, ClickHouseError> {
    client
        .query(
            "SELECT toUInt64(sum(epsilon_thousandths)) FROM audit_log
             WHERE action = 'export' AND actor = ? AND at >= fromUnixTimestamp64Milli(?)",
        )
        .bind(actor)
        .bind(since * 1000)
        .fetch_one()
        .await
        .map_err(ch("read the privacy budget spent"))
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<Action>,
    /// Only rows at or after this day.
    pub since: Option<Day>,
    pub limit: u64,
}

/// The latest audit rows matching `filter`, newest first.
pub async fn list(client: &Client, filter: &Filter) -> Result<Vec<Entry>, ClickHouseError> {
    client
        .query(
            "SELECT ?fields FROM audit_log
             WHERE (? = '' OR actor = ?) AND (? = '' OR action = ?)
               AND at >= toDateTime64(toDate32(?), 3, 'UTC')
             ORDER BY at DESC LIMIT ?",
        )
        .bind(filter.actor.as_deref().unwrap_or(""))
        .bind(filter.actor.as_deref().unwrap_or(""))
        .bind(filter.action.map_or("", Action::name))
        .bind(filter.action.map_or("", Action::name))
        .bind(filter.since.map_or(0, Day::since_epoch) as i32)
        .bind(filter.limit)
        .fetch_all()
        .await
        .map_err(ch("read the audit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_dates_past_2149_and_every_field() {
        let day = Day::parse("2200-01-01").unwrap().since_epoch();
        let mut e = Entry::refused("agency", 429, "budget spent");
        e.at = day * 86_400_000 + 1_234;
        e.report = "pages".into();
        e.from_day = day as i32;
        e.to_day = day as i32;
        e.epsilon_thousandths = 500;
        e.budget_left_thousandths = Some(1500);
        assert_eq!(
            e.line(),
            "2200-01-01T00:00:01.234Z\tagency\trefused\t429\tpages\t2200-01-01..2200-01-01\t\
             (all sites)\tK=0\tε=0.5\tbudget left=1.5\t0 rows\tbudget spent"
        );
    }

    #[test]
    fn the_cli_actor_names_the_os_user() {
        assert!(cli_actor().starts_with("cli:"));
        assert!(cli_actor().len() > 4);
    }
}
