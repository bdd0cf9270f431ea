//! `subject export` and `subject erase`: the data subject's right of access and right to
//! erasure.
//!
//! A person is named by a visitor id (the `ff_id` cookie) or a customer id. A customer's records
//! are: every event carrying their customer id; every email open addressed to them
//! (`recipient` = the customer id); the links of the visitor ids they were seen with
//! (`identities`); and, on each of those browsers, the unlinked events from a link of theirs
//! until the browser's next link to another customer or its next sign-out (`kind = 'signout'`,
//! the tracker's `footfall('signout')`). Nothing before their first link on a browser, nothing
//! after someone else's: a shared computer must not hand one person's records to another. The
//! rule is applied once per request ([`scope`]), and the unlinked events it gives are kept by
//! id in the scratch table, so export, erasure and the check after it agree on the same rows.
//!
//! The ids go to ClickHouse only in the body of an `INSERT` into a scratch table, which every
//! later statement joins: ClickHouse keeps the text of each query (`system.query_log`) and
//! mutation (`system.mutations`), bound parameters included, and an erased person's id must
//! not stay there.
//!
//! Export unseals IPs with the private key via each event's epoch key in `ip_keys`.
//!
//! Erasure covers everything answered before it: the time it starts (on ClickHouse's clock) is
//! the line, and hits the person makes after it are stored as any others. It first records
//! itself for the collectors ([`footfall_store::erasure`]: keyed hashes, never an id), so that
//! hits still waiting in a collector's spool are dropped when they are sent, however long after;
//! then it waits until no insert that may have started without knowing of it is still running
//! ([`settle`]), so none can land after the deletion. It deletes with `ALTER TABLE ... DELETE
//! ... SETTINGS mutations_sync = 2`, which returns only once ClickHouse has rewritten the
//! affected parts, so the rows are physically gone, not merely hidden; then it computes the
//! rollups of the days the person was seen on again (their unique-visitor states held the
//! person's hashed id), and counts again: it fails unless no row and no rollup state of theirs
//! is left.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use clickhouse::Client;
use clickhouse::query::Query;
use footfall_seal::SecretKey;
use footfall_store::cluster::Layout;
use footfall_store::erasure::{self, Entry};
use footfall_store::id::Id;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::cli::Who;
use crate::day::Day;
use crate::{ClickHouseError, ch, rollup};

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
        "ClickHouse reported the deletion done, yet {0} rows or rollup states of the subject remain; run the erasure again"
    )]
    NotErased(u64),
    #[error(
        "the subject's records are deleted, but an insert into events that began before the \
         collectors knew of the erasure was still running after {0} s; run the erasure again \
         once it has finished"
    )]
    Unsettled(u64),
    #[error(
        "the IP private key does not open the stored IPs: {refused} of the {stored} epoch keys \
         the subject's events were sealed under refuse it, so no export was written. Its public \
         key is {public}, not the one the collector sealed them with (its \
         FOOTFALL_IP_PUBLIC_KEY). Give the ip-seal.key made together with the collector's \
         ip-seal.pub (--ip-private-key or FOOTFALL_IP_PRIVATE_KEY); IPs sealed before a key \
         pair was replaced need the private key of the old pair"
    )]
    WrongKey {
        refused: usize,
        stored: usize,
        public: String,
    },
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

/// The subject's ids, in a scratch table of their own that is filled through an `INSERT`'s body:
/// every query and mutation below names the table, never an id, so no id of the subject is
/// left in ClickHouse's query log or in `system.mutations` (which keep the text of every
/// statement, with bound parameters substituted). Dropped when done. In a cluster every node
/// holds a copy, so that the shards' parts of a query or a mutation find it.
struct Scope {
    table: String,
    nodes: Vec<Client>,
    customer: bool,
    visitor_ids: Vec<String>,
}

/// Inserts that begin within this of an erasure's record may have fetched the erasure list
/// before it: the collectors' bound on the list's age, and a second for the insert to reach
/// ClickHouse.
const UNAWARE: Duration = erasure::LIST_MAX_AGE.saturating_add(Duration::from_secs(1));
/// Longest an erasure waits for such inserts to finish (a collector gives one up after 35 s).
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

#[derive(clickhouse::Row, Serialize)]
struct ScopeRow<'a> {
    kind: &'a str,
    id: &'a str,
}

impl Scope {
    /// Visitor ids of the scope, as a subquery.
    fn visitors(&self) -> String {
        format!("(SELECT id FROM {} WHERE kind = 'visitor')", self.table)
    }

    /// The customer id of the scope (none for a visitor), as a subquery.
    fn customers(&self) -> String {
        format!("(SELECT id FROM {} WHERE kind = 'customer')", self.table)
    }

    /// Unlinked events of the customer's browsers that are theirs by the rule of [`scope`], as a
    /// subquery of event ids.
    fn owned(&self) -> String {
        format!(
            "(SELECT toUUID(id) FROM {} WHERE kind = 'event')",
            self.table
        )
    }

    /// Rows of `events` that belong to the scope: a visitor's events; or a customer's own
    /// events, the email opens addressed to them, and the unlinked events theirs by the rule.
    fn events(&self) -> String {
        let (v, c) = (self.visitors(), self.customers());
        if self.customer {
            format!(
                "(customer_id IN {c} OR (kind = 'email_open' AND recipient IN {c})
                  OR event_id IN {o})",
                o = self.owned()
            )
        } else {
            format!("visitor_id IN {v}")
        }
    }

    /// Rows of `identities` that belong to the scope: a visitor's links, or a customer's.
    fn identities(&self) -> String {
        if self.customer {
            format!("customer_id IN {}", self.customers())
        } else {
            format!("visitor_id IN {}", self.visitors())
        }
    }

    /// The condition selecting the scope's rows of `table`.
    fn of(&self, table: &str) -> String {
        match table {
            "events" => self.events(),
            _ => self.identities(),
        }
    }

    async fn drop(self) {
        for node in &self.nodes {
            let dropped = node
                .query(&format!("DROP TABLE IF EXISTS {}", self.table))
                .execute()
                .await;
            if let Err(e) = dropped {
                tracing::warn!(error = %e, table = self.table, "scratch table of a subject request not dropped");
            }
        }
    }

    /// Adds `rows` to the scratch table on `nodes`.
    async fn write(&self, nodes: &[Client], rows: &[ScopeRow<'_>]) -> Result<(), ClickHouseError> {
        if rows.is_empty() {
            return Ok(());
        }
        for node in nodes {
            let mut insert = node
                .insert::<ScopeRow>(&self.table)
                .await
                .map_err(ch("fill the scratch table"))?;
            for row in rows {
                insert
                    .write(row)
                    .await
                    .map_err(ch("fill the scratch table"))?;
            }
            insert.end().await.map_err(ch("fill the scratch table"))?;
        }
        Ok(())
    }
}

/// The tables a subject's rows live in.
const TABLES: [&str; 2] = ["events", "identities"];

async fn scope(
    client: &Client,
    layout: &Layout,
    subject: &Subject,
) -> Result<Scope, ClickHouseError> {
    let table = format!("subject_scope_{}", Id::random().as_str().to_lowercase());
    let nodes = layout
        .nodes(client)
        .await
        .map_err(ch("list the nodes of the cluster"))?;
    let (customer, first) = match subject {
        Subject::Visitor(id) => (false, ("visitor", id.as_str())),
        Subject::Customer(c) => (true, ("customer", c.as_str())),
    };
    let mut scope = Scope {
        table,
        nodes,
        customer,
        visitor_ids: Vec::new(),
    };
    for node in &scope.nodes {
        node.query(&format!(
            "CREATE TABLE {} (kind LowCardinality(String), id String) ENGINE = Memory",
            scope.table
        ))
        .execute()
        .await
        .map_err(ch("create the scratch table of a subject request"))?;
    }
    let first = ScopeRow {
        kind: first.0,
        id: first.1,
    };
    scope.write(&scope.nodes, &[first]).await?;
    // The linked visitor ids are found through the first node, then copied to the others.
    let here = scope.nodes[0].clone();
    if customer {
        let c = scope.customers();
        here.query(&format!(
            "INSERT INTO {t} (kind, id)
                 SELECT DISTINCT 'visitor', visitor_id FROM (
                     SELECT visitor_id FROM identities WHERE customer_id IN {c}
                     UNION ALL
                     SELECT visitor_id FROM events WHERE customer_id IN {c}
                 ) WHERE visitor_id != ''",
            t = scope.table
        ))
        .execute()
        .await
        .map_err(ch("find the visitor ids linked to the customer"))?;
    }
    scope.visitor_ids = here
        .query(&format!(
            "SELECT id FROM {} WHERE kind = 'visitor' ORDER BY id",
            scope.table
        ))
        .fetch_all::<String>()
        .await
        .map_err(ch("read the visitor ids of the subject"))?;
    if customer {
        // Every shard's part of the query below reads its own node's copy of the ids.
        let visitors: Vec<ScopeRow> = (scope.visitor_ids.iter())
            .map(|id| ScopeRow {
                kind: "visitor",
                id,
            })
            .collect();
        scope.write(&scope.nodes[1..], &visitors).await?;
        // On each browser, an unlinked event belongs to whoever the last link before it named,
        // unless a sign-out came in between (its marker is ''); before any link, to nobody. At
        // one instant a sign-out counts after the link.
        here.query(&format!(
                "INSERT INTO {t} (kind, id)
                 SELECT 'event', toString(event_id) FROM (
                     SELECT event_id, customer_id,
                            anyLast(marker) OVER (
                                PARTITION BY visitor_id ORDER BY ts, kind = 'signout'
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS owner
                     FROM (
                         SELECT event_id, visitor_id, ts, kind, customer_id,
                                multiIf(kind = 'signout', '', customer_id != '', customer_id, NULL) AS marker
                         FROM events WHERE visitor_id IN {v}))
                 WHERE customer_id = '' AND owner IN {c}",
                t = scope.table,
                v = scope.visitors(),
                c = scope.customers(),
            ))
            .execute()
            .await
            .map_err(ch("find the customer's unlinked events"))?;
        if scope.nodes.len() > 1 {
            let events: Vec<String> = here
                .query(&format!(
                    "SELECT id FROM {} WHERE kind = 'event'",
                    scope.table
                ))
                .fetch_all()
                .await
                .map_err(ch("read the customer's unlinked events"))?;
            let events: Vec<ScopeRow> = (events.iter())
                .map(|id| ScopeRow { kind: "event", id })
                .collect();
            scope.write(&scope.nodes[1..], &events).await?;
        }
    }
    Ok(scope)
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
    layout: &Layout,
    subject: &Subject,
    key: &SecretKey,
) -> Result<Value, SubjectError> {
    let scope = scope(client, layout, subject).await?;
    let result = export_scope(client, subject, &scope, key).await;
    scope.drop().await;
    result
}

async fn export_scope(
    client: &Client,
    subject: &Subject,
    scope: &Scope,
    key: &SecretKey,
) -> Result<Value, SubjectError> {
    let identities = json_rows(
        client.query(&format!(
            "SELECT customer_id, visitor_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen
             FROM identities WHERE {} GROUP BY customer_id, visitor_id ORDER BY first_seen",
            scope.identities()
        )),
        "read identities",
    )
    .await?;
    let mut events = json_rows(
        client.query(&format!(
            "SELECT * EXCEPT (ip_key_id, ip_sealed), toString(ip_key_id) AS ip_epoch_key, hex(ip_sealed) AS ip_sealed_hex
             FROM events WHERE {} ORDER BY ts, event_id",
            scope.events()
        )),
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
/// event has none or its epoch key is gone (expired with the retention period, one day after
/// the events it sealed). An epoch key that is stored but does not open with `key` is an
/// error, not a `null`: a copy of a person's data with their IPs silently missing is wrong,
/// and the cause is almost always a private key of another pair.
async fn unseal_ips(
    client: &Client,
    key: &SecretKey,
    events: &mut [Map<String, Value>],
) -> Result<(), SubjectError> {
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
    let stored_keys = stored.len();
    let opened: HashMap<u64, _> = stored
        .into_iter()
        .filter_map(|k| Some((k.key_id, key.open_epoch_key(&k.sealed_key).ok()?)))
        .collect();
    if opened.len() < stored_keys {
        return Err(SubjectError::WrongKey {
            refused: stored_keys - opened.len(),
            stored: stored_keys,
            public: key.public_key().to_text(),
        });
    }
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
    /// Days whose rollups were computed again without the subject.
    pub days: usize,
}

/// Deletes every record of `subject` made before now, after recording the erasure for the
/// collectors (so hits still in their spools are dropped) and letting it settle; computes the
/// rollups of the days they touched again without them, and returns once ClickHouse confirms
/// that none is left: no row in a table, and no visitor id of theirs in any unique-visitor
/// state of those days.
pub async fn erase(
    client: &Client,
    layout: &Layout,
    subject: &Subject,
) -> Result<Erased, SubjectError> {
    let first = scope(client, layout, subject).await?;
    let announced = announce(client, layout, subject, &first).await;
    first.drop().await;
    let (erased, settled) = announced?;
    // Again: what landed while the erasure settled is the subject's too (a customer's unlinked
    // events are found by the rule, row by row).
    let scope = scope(client, layout, subject).await?;
    let result = erase_scope(client, layout, &scope, erased, settled).await;
    scope.drop().await;
    result
}

/// Records the erasure for the collectors and waits for it to settle ([`settle`]). Returns the
/// erasure's time (ms on ClickHouse's clock) and whether it settled.
async fn announce(
    client: &Client,
    layout: &Layout,
    subject: &Subject,
    scope: &Scope,
) -> Result<(i64, bool), SubjectError> {
    let erased = erasure::now_ms(client)
        .await
        .map_err(ch("read the time on ClickHouse's clock"))?;
    let stretches = match subject {
        Subject::Visitor(_) => Vec::new(),
        Subject::Customer(_) => stretches(client, scope, erased).await?,
    };
    let mut entries: Vec<Entry> = match subject {
        Subject::Visitor(id) => vec![Entry::Visitor(id.as_str())],
        Subject::Customer(c) => vec![Entry::Customer(c)],
    };
    entries.extend(
        stretches
            .iter()
            .map(|(visitor, since, until)| Entry::Browser {
                visitor,
                since: *since,
                until: *until,
            }),
    );
    erasure::record(client, &entries, erased)
        .await
        .map_err(ch("record the erasure for the collectors"))?;
    let settled = settle(client, layout, Instant::now()).await?;
    Ok((erased, settled))
}

async fn erase_scope(
    client: &Client,
    layout: &Layout,
    scope: &Scope,
    erased: i64,
    settled: bool,
) -> Result<Erased, SubjectError> {
    let before = |time: &str| format!("{time} < fromUnixTimestamp64Milli({erased}, 'UTC')");
    let of = |table: &str| {
        let time = if table == "events" {
            "ts"
        } else {
            "first_seen"
        };
        format!("({}) AND {}", scope.of(table), before(time))
    };
    let days: Vec<u16> = client
        .query(&format!(
            "SELECT DISTINCT toDate(ts) AS day FROM events WHERE {} ORDER BY day",
            of("events")
        ))
        .fetch_all()
        .await
        .map_err(ch("find the days of the subject's events"))?;
    let mut deleted = [0u64; TABLES.len()];
    for (table, deleted) in TABLES.iter().zip(&mut deleted) {
        let condition = of(table);
        *deleted = count(
            client.query(&format!("SELECT count() FROM {table} WHERE {condition}")),
            table,
        )
        .await?;
        if *deleted > 0 {
            layout
                .alter(
                    client,
                    table,
                    &format!("DELETE WHERE {condition} SETTINGS mutations_sync = 2"),
                )
                .await
                .map_err(ch(format!("delete from {table}")))?;
        }
    }
    let days: Vec<Day> = days
        .into_iter()
        .map(|d| Day::from_epoch(i64::from(d)))
        .collect();
    for (from, to) in runs(&days) {
        rollup::backfill(client, layout, from, to).await?;
    }
    let mut left = 0;
    for table in TABLES {
        left += count(
            client.query(&format!("SELECT count() FROM {table} WHERE {}", of(table))),
            table,
        )
        .await?;
    }
    left += rollup_members(client, scope).await?;
    if left > 0 {
        return Err(SubjectError::NotErased(left));
    }
    if !settled {
        return Err(SubjectError::Unsettled(SETTLE_LIMIT.as_secs()));
    }
    Ok(Erased {
        visitor_ids: scope.visitor_ids.len(),
        events: deleted[0],
        identities: deleted[1],
        days: days.len(),
    })
}

/// The stretches (visitor id, from, until; ms) in which each of a customer's browsers was
/// theirs before `erased`, by the rule of [`scope`]: from a link of theirs to the browser's
/// next link or sign-out, the last one open until the erasure.
async fn stretches(
    client: &Client,
    scope: &Scope,
    erased: i64,
) -> Result<Vec<(String, i64, i64)>, ClickHouseError> {
    client
        .query(&format!(
            "SELECT visitor_id, toUnixTimestamp64Milli(ts),
                    toUnixTimestamp64Milli(ifNull(next, fromUnixTimestamp64Milli({erased}, 'UTC')))
             FROM (
                 SELECT visitor_id, ts, marker,
                        leadInFrame(toNullable(ts)) OVER (
                            PARTITION BY visitor_id ORDER BY ts, kind = 'signout'
                            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS next
                 FROM (
                     SELECT visitor_id, ts, kind, if(kind = 'signout', '', customer_id) AS marker
                     FROM events
                     WHERE visitor_id IN {v} AND (customer_id != '' OR kind = 'signout')
                       AND ts < fromUnixTimestamp64Milli({erased}, 'UTC')))
             WHERE marker IN {c}
             ORDER BY visitor_id, ts",
            v = scope.visitors(),
            c = scope.customers(),
        ))
        .fetch_all()
        .await
        .map_err(ch("find the stretches of the customer's browsers"))
}

/// Waits until no insert into `events` that began within [`UNAWARE`] of `recorded` (the
/// moment the erasure was recorded) is running on any node: those may carry hits the erasure
/// covers, sent with a list from before it, and must land before the deletion. Later inserts
/// know of it. False if some were still running after [`SETTLE_LIMIT`].
async fn settle(
    client: &Client,
    layout: &Layout,
    recorded: Instant,
) -> Result<bool, ClickHouseError> {
    tokio::time::sleep(UNAWARE).await;
    let nodes = layout
        .nodes(client)
        .await
        .map_err(ch("list the nodes of the cluster"))?;
    loop {
        // An insert running for longer than this began before `recorded` + UNAWARE.
        let began_before = recorded.elapsed().saturating_sub(UNAWARE).as_secs_f64();
        let mut running = 0;
        for node in &nodes {
            running += node
                .query(
                    "SELECT count() FROM system.processes
                     WHERE is_initial_query AND query_kind = 'Insert'
                       AND current_database = currentDatabase()
                       AND query ILIKE 'INSERT INTO events %' AND elapsed >= ?",
                )
                .bind(began_before)
                .fetch_one::<u64>()
                .await
                .map_err(ch("list the inserts running"))?;
        }
        if running == 0 {
            return Ok(true);
        }
        if recorded.elapsed() >= SETTLE_LIMIT {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Consecutive days as ranges `(first, last)`.
fn runs(days: &[Day]) -> Vec<(Day, Day)> {
    let mut out: Vec<(Day, Day)> = Vec::new();
    for &day in days {
        match out.last_mut() {
            Some((_, last)) if last.plus(1) == day => *last = day,
            _ => out.push((day, day)),
        }
    }
    out
}

/// Rollup rows whose unique-visitor (or unique-recipient) state holds one of the scope's ids
/// that no event holds any more, hashed as the table's states are, under any month's key:
/// merging those hashes' state into it would not raise its count by as many. A browser shared
/// with someone else keeps its id in the rollups of the days its remaining events were on: those
/// count the other person, not the subject.
async fn rollup_members(client: &Client, scope: &Scope) -> Result<u64, ClickHouseError> {
    let gone = format!(
        "(SELECT id FROM {t} WHERE kind IN ('visitor', 'customer')
            AND id NOT IN (SELECT visitor_id FROM events)
            AND id NOT IN (SELECT recipient FROM events WHERE kind = 'email_open'))",
        t = scope.table
    );
    let database = rollup::database(client).await?;
    let traffic = rollup::member_hash(client, &database, "traffic_keyed_daily").await?;
    let sessions = rollup::member_hash(client, &database, "sessions_daily").await?;
    let n = format!("(SELECT count() FROM {gone} AS gone, rollup_keys)");
    let mut members = 0;
    for (table, state, hash) in [
        ("traffic_keyed_daily", "visitors", traffic),
        ("sessions_daily", "visit_visitors", sessions),
        ("sessions_daily", "timed_visitors", sessions),
        ("sessions_daily", "exit_visitors", sessions),
        ("sessions_daily", "scroll_visitors", sessions),
    ] {
        let hashes = format!(
            "(SELECT uniqExactState({hash}((k0, k1), id)) FROM {gone} AS gone, rollup_keys)"
        );
        members += client
            .query(&format!(
                "SELECT count() FROM {table}
                 WHERE arrayReduce('uniqExactMerge', [{state}, {hashes}])
                       < finalizeAggregation({state}) + {n}"
            ))
            .fetch_one::<u64>()
            .await
            .map_err(ch(format!("test {table} for the subject's ids")))?;
    }
    Ok(members)
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
