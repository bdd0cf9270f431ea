//! API tokens for `serve`: created once, stored only as a SHA-256 hash, scoped to reports and
//! sites, revocable.
//!
//! A token is `fft_` and 64 hex digits of 32 random bytes from the OS. `api_tokens` keeps its
//! name, hash and scope; revoking writes a newer version of the row (ReplacingMergeTree), so
//! lookups read `FINAL`.

use clickhouse::Client;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::day::Day;
use crate::report::{Report, valid_site};
use crate::{ClickHouseError, ch};

/// A token's name, hash and what it may read (empty: everything).
#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct Token {
    pub name: String,
    pub token_sha256: String,
    pub reports: Vec<String>,
    pub sites: Vec<String>,
    /// Only ranges of whole calendar months: such ranges never overlap partly, so two of them
    /// cannot be subtracted to isolate a day or a few visitors.
    pub months_only: bool,
    /// Seconds since the Unix epoch.
    pub created: u32,
    pub revoked: bool,
    /// Microseconds since the Unix epoch: the row's version.
    pub updated: i64,
}

impl Token {
    pub fn allows_report(&self, report: Report) -> bool {
        self.reports.is_empty() || self.reports.iter().any(|r| r == report.name())
    }

    /// A token limited to whole months reads only ranges from a month's first day to a month's
    /// last day.
    pub fn allows_range(&self, from: Day, to: Day) -> bool {
        !self.months_only || (from == from.month_start() && to == to.month_end())
    }

    /// A site-scoped token reads only its sites, and not the site-less `email` report.
    pub fn allows_site(&self, site: Option<&str>) -> bool {
        self.sites.is_empty() || site.is_some_and(|s| self.sites.iter().any(|x| x == s))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token name is 1 to 64 letters, digits and .-_")]
    BadName,
    #[error("unknown report '{0}' in --reports")]
    BadReport(String),
    #[error("'{0}' in --sites is not a site name")]
    BadSite(String),
    #[error("a token named '{0}' exists; revoke it first or choose another name")]
    Exists(String),
    #[error("no active token is named '{0}' (see `footfall-aggregator token list`)")]
    Unknown(String),
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}

/// The hash under which a token is stored and looked up.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> (u32, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.as_micros() as i64)
}

/// Creates a token and returns it in clear: the only time it is seen.
pub async fn create(
    client: &Client,
    name: &str,
    reports: &[String],
    sites: &[String],
    months_only: bool,
) -> Result<String, TokenError> {
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b));
    if !name_ok {
        return Err(TokenError::BadName);
    }
    if let Some(r) = reports.iter().find(|r| Report::parse(r).is_none()) {
        return Err(TokenError::BadReport(r.clone()));
    }
    if let Some(s) = sites.iter().find(|s| !valid_site(s)) {
        return Err(TokenError::BadSite(s.clone()));
    }
    if list(client).await?.iter().any(|t| t.name == name) {
        return Err(TokenError::Exists(name.into()));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token: String = "fft_".chars().chain(hex(&bytes).chars()).collect();
    let (created, updated) = now();
    insert(
        client,
        &Token {
            name: name.into(),
            token_sha256: hash(&token),
            reports: reports.to_vec(),
            sites: sites.to_vec(),
            months_only,
            created,
            revoked: false,
            updated,
        },
    )
    .await?;
    Ok(token)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn insert(client: &Client, token: &Token) -> Result<(), ClickHouseError> {
    let mut insert = client
        .insert::<Token>("api_tokens")
        .await
        .map_err(ch("store the token"))?;
    insert.write(token).await.map_err(ch("store the token"))?;
    insert.end().await.map_err(ch("store the token"))
}

/// Every token that is not revoked.
pub async fn list(client: &Client) -> Result<Vec<Token>, ClickHouseError> {
    client
        .query("SELECT ?fields FROM api_tokens FINAL WHERE NOT revoked ORDER BY name")
        .fetch_all()
        .await
        .map_err(ch("list tokens"))
}

/// Revokes the token named `name`: from now on it gets 401.
pub async fn revoke(client: &Client, name: &str) -> Result<(), TokenError> {
    let mut token = list(client)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| TokenError::Unknown(name.into()))?;
    token.revoked = true;
    token.updated = now().1;
    Ok(insert(client, &token).await?)
}

/// The active token whose hash matches `presented`, if any.
pub async fn verify(client: &Client, presented: &str) -> Result<Option<Token>, ClickHouseError> {
    client
        .query("SELECT ?fields FROM api_tokens FINAL WHERE token_sha256 = ? AND NOT revoked")
        .bind(hash(presented))
        .fetch_optional()
        .await
        .map_err(ch("look up a token"))
}
