//! `subject export` and `subject erase`: the data subject's right of access and right to
//! erasure.
//!
//! A person is named by a visitor id (the `ff_id` cookie) or a customer id. A customer's records
//! are everything linked to them: every visitor id they were seen with (the `identities` table
//! and `customer_id` on events), the events of those visitors (except those linked to another
//! customer: a shared computer must not hand one person's records to another), every event
//! carrying their customer id, and every email open addressed to them (`recipient` = the
//! customer id).
//!
//! Export unseals IPs with the private key via each event's epoch key in `ip_keys`. Erasure
//! deletes with `ALTER TABLE ... DELETE ... SETTINGS mutations_sync = 2`, which returns only once
//! ClickHouse has rewritten the affected parts, so the rows are physically gone, not merely
//! hidden; then it counts again and fails unless nothing is left.

use std::collections::HashMap;
use std::net::IpAddr;

use clickhouse::Client;
use clickhouse::query::Query;
use footfall_collector::id::Id;
use footfall_seal::SecretKey;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::cli::Who;
use crate::{ClickHouseError, ch};

/// Longest customer id or email recipient accepted, in bytes.
const CUSTOMER_MAX: usize = 256;

/// Whose records.
pub enum Subject {
    Visitor(Id),
    Customer(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("'--visitor' takes the value of the ff_id cookie: 22 letters and digits")]
    BadVisitor,
    #[error(
        "'--customer' takes a customer id of 1 to {CUSTOMER_MAX} bytes without control characters"
    )]
    BadCustomer,
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error(
        "ClickHouse reported the deletion done, yet {0} rows of the subject remain; run the erasure again"
    )]
    NotErased(u64),
}

impl Subject {
    /// The subject named on the command line, checked.
    pub fn from_who(who: &Who) -> Result<Self, SubjectError> {
        match (&who.visitor, &who.customer) {
            (Some(visitor), _) => Id::parse(visitor.trim())
                .map(Subject::Visitor)
                .ok_or(SubjectError::BadVisitor),
            (None, Some(customer)) => {
                let plain = (1..=CUSTOMER_MAX).contains(&customer.len())
                    && !customer.chars().any(char::is_control);
                if plain {
                    Ok(Subject::Customer(customer.clone()))
                } else {
                    Err(SubjectError::BadCustomer)
                }
            }
            (None, None) => Err(SubjectError::BadCustomer),
        }
    }
}

/// Every visitor id and the customer id (empty for a visitor) whose rows belong to the subject.
struct Scope {
    visitor_ids: Vec<String>,
    customer_id: String,
}

/// Rows of `events` that belong to a scope: the visitors' events (for a customer, not those
/// linked to a different customer, as on a shared computer), the customer's own events, and the
/// email opens addressed to them. Binds: visitor ids, then the customer id five times.
const EVENTS_MATCH: &str = "(has(?, visitor_id) AND (? = '' OR customer_id IN ('', ?)))
    OR (? != '' AND (customer_id = ? OR (kind = 'email_open' AND recipient = ?)))";
/// Rows of `identities` that belong to a scope: a visitor's links, or a customer's.
/// Binds: customer id, visitor ids, customer id.
const IDENTITIES_MATCH: &str = "(? = '' AND has(?, visitor_id)) OR customer_id = ?";

impl Scope {
    fn bind_events(&self, query: Query) -> Query {
        let c = &self.customer_id;
        query
            .bind(&self.visitor_ids)
            .bind(c)
            .bind(c)
            .bind(c)
            .bind(c)
            .bind(c)
    }

    fn bind_identities(&self, query: Query) -> Query {
        query
            .bind(&self.customer_id)
            .bind(&self.visitor_ids)
            .bind(&self.customer_id)
    }
}

/// Binds a scope's values to a condition's placeholders.
type Bind = fn(&Scope, Query) -> Query;

/// The tables a subject's rows live in: name, condition, and how to bind it.
const TABLES: [(&str, &str, Bind); 2] = [
    ("events", EVENTS_MATCH, Scope::bind_events),
    ("identities", IDENTITIES_MATCH, Scope::bind_identities),
];

async fn scope(client: &Client, subject: &Subject) -> Result<Scope, ClickHouseError> {
    Ok(match subject {
        Subject::Visitor(id) => Scope {
            visitor_ids: vec![id.to_string()],
            customer_id: String::new(),
        },
        Subject::Customer(customer) => {
            let visitor_ids = client
                .query(
                    "SELECT DISTINCT visitor_id FROM (
                         SELECT visitor_id FROM identities WHERE customer_id = ?
                         UNION ALL
                         SELECT visitor_id FROM events WHERE customer_id = ?
                     ) WHERE visitor_id != '' ORDER BY visitor_id",
                )
                .bind(customer)
                .bind(customer)
                .fetch_all::<String>()
                .await
                .map_err(ch("find the visitor ids linked to the customer"))?;
            Scope {
                visitor_ids,
                customer_id: customer.clone(),
            }
        }
    })
}

#[derive(clickhouse::Row, Deserialize)]
struct StoredKey {
    key_id: u64,
    #[serde(with = "serde_bytes")]
    sealed_key: Vec<u8>,
}

/// Every record held about `subject`, as JSON: the visitor ids, the identity links, the events
/// (page views, engagement, ...) and the email opens, each event with its IP unsealed.
pub async fn export(
    client: &Client,
    subject: &Subject,
    key: &SecretKey,
) -> Result<Value, SubjectError> {
    let scope = scope(client, subject).await?;
    let identities = json_rows(
        scope.bind_identities(client.query(&format!(
            "SELECT customer_id, visitor_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen
             FROM identities WHERE {IDENTITIES_MATCH} GROUP BY customer_id, visitor_id ORDER BY first_seen"
        ))),
        "read identities",
    )
    .await?;
    let mut events = json_rows(
        scope.bind_events(client.query(&format!(
            "SELECT * EXCEPT (ip_key_id, ip_sealed), toString(ip_key_id) AS ip_epoch_key, hex(ip_sealed) AS ip_sealed_hex
             FROM events WHERE {EVENTS_MATCH} ORDER BY ts, event_id"
        ))),
        "read events",
    )
    .await?;
    unseal_ips(client, key, &mut events).await?;
    let (email_opens, events): (Vec<_>, Vec<_>) = events
        .into_iter()
        .partition(|e| e.get("kind").and_then(Value::as_str) == Some("email_open"));
    let subject = match subject {
        Subject::Visitor(id) => json!({ "visitor_id": id.as_str() }),
        Subject::Customer(customer) => json!({ "customer_id": customer }),
    };
    Ok(json!({
        "subject": subject,
        "visitor_ids": scope.visitor_ids,
        "identities": identities,
        "events": events,
        "email_opens": email_opens,
    }))
}

/// Replaces each event's sealed IP and epoch key id by `ip`: the address, or `null` when the
/// event has none or its epoch key is gone (expired with the retention period).
async fn unseal_ips(
    client: &Client,
    key: &SecretKey,
    events: &mut [Map<String, Value>],
) -> Result<(), ClickHouseError> {
    let key_id = |e: &Map<String, Value>| {
        e.get("ip_epoch_key")
            .and_then(Value::as_str)
            .and_then(|k| k.parse::<u64>().ok())
    };
    let mut key_ids: Vec<u64> = events.iter().filter_map(key_id).collect();
    key_ids.sort_unstable();
    key_ids.dedup();
    let stored: Vec<StoredKey> = client
        .query("SELECT key_id, sealed_key FROM ip_keys FINAL WHERE has(?, key_id)")
        .bind(&key_ids)
        .fetch_all()
        .await
        .map_err(ch("read the IP epoch keys"))?;
    let opened: HashMap<u64, _> = stored
        .into_iter()
        .filter_map(|k| Some((k.key_id, key.open_epoch_key(&k.sealed_key).ok()?)))
        .collect();
    for event in events {
        let sealed = event
            .remove("ip_sealed_hex")
            .and_then(|v| v.as_str().and_then(unhex));
        let epoch = key_id(event).and_then(|id| opened.get(&id));
        event.remove("ip_epoch_key");
        let ip: Option<IpAddr> = sealed
            .zip(epoch)
            .and_then(|(sealed, epoch)| epoch.open_ip(&sealed).ok());
        event.insert(
            "ip".to_owned(),
            ip.map_or(Value::Null, |ip| Value::String(ip.to_string())),
        );
    }
    Ok(())
}

/// What an erasure deleted.
#[derive(Debug)]
pub struct Erased {
    pub visitor_ids: usize,
    pub events: u64,
    pub identities: u64,
}

/// Deletes every record of `subject` and returns once ClickHouse confirms none is left.
pub async fn erase(client: &Client, subject: &Subject) -> Result<Erased, SubjectError> {
    let scope = scope(client, subject).await?;
    let mut deleted = [0u64; TABLES.len()];
    for ((table, condition, bind), deleted) in TABLES.iter().zip(&mut deleted) {
        *deleted = count(
            bind(
                &scope,
                client.query(&format!("SELECT count() FROM {table} WHERE {condition}")),
            ),
            table,
        )
        .await?;
        if *deleted > 0 {
            bind(
                &scope,
                client.query(&format!(
                    "ALTER TABLE {table} DELETE WHERE {condition} SETTINGS mutations_sync = 2"
                )),
            )
            .execute()
            .await
            .map_err(ch(format!("delete from {table}")))?;
        }
    }
    let mut left = 0;
    for (table, condition, bind) in TABLES {
        left += count(
            bind(
                &scope,
                client.query(&format!("SELECT count() FROM {table} WHERE {condition}")),
            ),
            table,
        )
        .await?;
    }
    if left > 0 {
        return Err(SubjectError::NotErased(left));
    }
    Ok(Erased {
        visitor_ids: scope.visitor_ids.len(),
        events: deleted[0],
        identities: deleted[1],
    })
}

async fn count(query: Query, table: &str) -> Result<u64, ClickHouseError> {
    query
        .fetch_one::<u64>()
        .await
        .map_err(ch(format!("count rows in {table}")))
}

/// The rows of a query as JSON objects (times in ISO 8601, UTC).
async fn json_rows(query: Query, what: &str) -> Result<Vec<Map<String, Value>>, ClickHouseError> {
    let bytes = query
        .with_setting("date_time_output_format", "iso")
        .fetch_bytes("JSONEachRow")
        .map_err(ch(what))?
        .collect()
        .await
        .map_err(ch(what))?;
    Ok(bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect())
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked() {
        let who = |visitor: Option<&str>, customer: Option<&str>| Who {
            visitor: visitor.map(str::to_owned),
            customer: customer.map(str::to_owned),
        };
        let id = Id::random();
        assert!(
            matches!(Subject::from_who(&who(Some(id.as_str()), None)), Ok(Subject::Visitor(v)) if v == id)
        );
        assert!(matches!(
            Subject::from_who(&who(Some("not-an-id"), None)),
            Err(SubjectError::BadVisitor)
        ));
        assert!(
            matches!(Subject::from_who(&who(None, Some("c-1"))), Ok(Subject::Customer(c)) if c == "c-1")
        );
        assert!(matches!(
            Subject::from_who(&who(None, Some(""))),
            Err(SubjectError::BadCustomer)
        ));
        assert!(matches!(
            Subject::from_who(&who(None, Some("a\nb"))),
            Err(SubjectError::BadCustomer)
        ));
    }

    #[test]
    fn hex_decodes_only_hex() {
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex(""), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
