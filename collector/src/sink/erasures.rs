//! Dropping the spooled rows of erased subjects before they are inserted.
//!
//! A hit answered before `subject erase` but sent after it (the collector could not reach
//! ClickHouse in between) must not be stored ([`footfall_store::erasure`] says what a record
//! covers and for how long). The inserter fetches the list of erasures at most
//! [`footfall_store::erasure::LIST_MAX_AGE`] before each insert and passes every batch through
//! [`keeps`] as the insert sends them: a pure function of the list, the row and what earlier rows
//! said ([`Markers`]), tested without ClickHouse, like the encoders of a Vector sink.
//!
//! Rows are read where they lie ([`footfall_store::row_binary::owner`]: five fields, no whole
//! event decoded) and only when one could be covered: a row answered after the latest erasure
//! (every row, once a backlog has drained) costs one comparison, and an empty list nothing.
//! Otherwise an id is hashed once per erasure key (one per month with erasures), not once per
//! erasure.
//!
//! A customer's browser changes hands at links and sign-outs, and those of the spool itself
//! are not in ClickHouse yet: [`Markers`] follows them, in the order the rows were answered, for
//! the browsers the list names and the browsers an erased customer links in the spool. They
//! live in memory, between batches; after a restart the spool is replayed from its commit mark,
//! and links committed before it are not seen again (their browser's later unlinked rows are
//! then judged by the list alone).

use std::collections::HashMap;
use std::time::Instant;

use footfall_store::erasure::{self, ErasureRow, Hasher, KeyRow};
use footfall_store::row_binary;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Visitor,
    Customer,
    Browser,
}

/// Rows answered from `since` (inclusive) to `until` (exclusive), in ms.
#[derive(Clone, Copy)]
struct Rule {
    target: Target,
    since: i64,
    until: i64,
}

impl Rule {
    fn covers(&self, ts: i64) -> bool {
        self.since <= ts && ts < self.until
    }
}

/// The records hashed under one key.
struct Keyed {
    hasher: Hasher,
    latest: i64,
    rules: HashMap<[u8; 16], Vec<Rule>>,
}

/// The erasures, ready to test rows against.
#[derive(Default)]
pub struct List {
    keyed: Vec<Keyed>,
    /// The latest `until` of any record: no row answered since is covered.
    latest: i64,
}

impl List {
    /// The list of `rows`, hashed under `keys`. A record of an unknown target (a newer
    /// aggregator's) or without its key (expired) is left out.
    pub fn new(keys: &[KeyRow], rows: &[ErasureRow]) -> Self {
        let mut keyed: Vec<(u64, Keyed)> = keys
            .iter()
            .map(|k| {
                let keyed = Keyed {
                    hasher: Hasher::new(&k.key),
                    latest: i64::MIN,
                    rules: HashMap::new(),
                };
                (k.key_id, keyed)
            })
            .collect();
        let mut latest = i64::MIN;
        for row in rows {
            let target = match row.target.as_str() {
                erasure::VISITOR => Target::Visitor,
                erasure::CUSTOMER => Target::Customer,
                erasure::BROWSER => Target::Browser,
                _ => continue,
            };
            let (Some((_, keys)), Ok(hash)) = (
                keyed.iter_mut().find(|(id, _)| *id == row.key_id),
                <[u8; 16]>::try_from(row.hash.as_slice()),
            ) else {
                continue;
            };
            keys.rules.entry(hash).or_default().push(Rule {
                target,
                since: row.since,
                until: row.until,
            });
            keys.latest = keys.latest.max(row.until);
            latest = latest.max(row.until);
        }
        keyed.retain(|(_, k)| !k.rules.is_empty());
        Self {
            keyed: keyed.into_iter().map(|(_, k)| k).collect(),
            latest,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty()
    }

    /// The `until` of a record for `target` naming `id` and covering `ts`, if there is one.
    fn covering(&self, target: Target, id: &[u8], ts: i64) -> Option<i64> {
        if id.is_empty() {
            return None;
        }
        self.rules(id, ts)
            .find(|r| r.target == target && r.covers(ts))
            .map(|r| r.until)
    }

    /// Whether some record names `id` as a customer's browser.
    fn names_browser(&self, id: &[u8]) -> bool {
        !id.is_empty()
            && self
                .rules(id, i64::MIN)
                .any(|r| r.target == Target::Browser)
    }

    /// The rules naming `id` under every key with a record reaching past `ts`.
    fn rules(&self, id: &[u8], ts: i64) -> impl Iterator<Item = &Rule> {
        self.keyed
            .iter()
            .filter(move |k| k.latest > ts)
            .filter_map(move |k| k.rules.get(&k.hasher.hash(id)))
            .flatten()
    }
}

/// What the inserter knows of the erasures: the list, when it was fetched, and the markers of
/// the rows inserted so far.
#[derive(Default)]
pub struct Erasures {
    pub list: List,
    /// When the list was last known to be current, and the records' version then
    /// ([`erasure::version`]).
    checked: Option<(Instant, (u64, i64))>,
    pub markers: Markers,
}

impl Erasures {
    /// Whether the list must be checked again before an insert starts.
    pub fn stale(&self, now: Instant) -> bool {
        self.checked
            .is_none_or(|(at, _)| now.duration_since(at) >= erasure::LIST_MAX_AGE)
    }

    /// Whether the records' version is the one the list was made from.
    pub fn current(&self, version: (u64, i64)) -> bool {
        self.checked.is_some_and(|(_, v)| v == version)
    }

    /// The list is current as of `at` (when the check began), made from records of `version`.
    pub fn checked(&mut self, at: Instant, version: (u64, i64)) {
        self.checked = Some((at, version));
    }
}

/// The last link or sign-out seen in the spool on each browser that matters to an erasure.
#[derive(Clone, Default)]
pub struct Markers(HashMap<Box<[u8]>, Marker>);

#[derive(Clone, Copy)]
struct Marker {
    at: i64,
    /// `Some(until)` when an erased customer linked the browser: their erasure's `until`.
    erased_until: Option<i64>,
}

/// Whether the spooled `row` may be stored, given `list`; `markers` learns the row's link or
/// sign-out. Bytes that are not a row are kept (ClickHouse judges them).
pub fn keeps(list: &List, markers: &mut Markers, row: &[u8]) -> bool {
    if list.is_empty() {
        return true;
    }
    let Some(owner) = row_binary::owner(row) else {
        return true;
    };
    if owner.ts >= list.latest {
        return true;
    }
    let (ts, visitor) = (owner.ts, owner.visitor_id);
    if list.covering(Target::Visitor, visitor, ts).is_some() {
        return false;
    }
    let signout = owner.kind == b"signout";
    if !owner.customer_id.is_empty() {
        let erased = list.covering(Target::Customer, owner.customer_id, ts);
        if !visitor.is_empty() && (erased.is_some() || tracked(list, markers, visitor)) {
            let marker = Marker {
                at: ts,
                erased_until: erased,
            };
            markers.0.insert(visitor.into(), marker);
        }
        return erased.is_none();
    }
    if owner.kind == b"email_open"
        && list
            .covering(Target::Customer, owner.recipient, ts)
            .is_some()
    {
        return false;
    }
    if signout {
        if tracked(list, markers, visitor) {
            let marker = Marker {
                at: ts,
                erased_until: None,
            };
            markers.0.insert(visitor.into(), marker);
        }
        return true;
    }
    match markers.0.get(visitor) {
        Some(marker) if marker.at <= ts => marker.erased_until.is_none_or(|until| ts >= until),
        _ => list.covering(Target::Browser, visitor, ts).is_none(),
    }
}

fn tracked(list: &List, markers: &Markers, visitor: &[u8]) -> bool {
    markers.0.contains_key(visitor) || list.names_browser(visitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::batch::Batch;
    use footfall_store::event::{Event, Kind};
    use uuid::Uuid;

    const KEY: [u8; 32] = [7; 32];
    const ERASED: i64 = 10_000;

    fn key() -> KeyRow {
        KeyRow {
            key_id: 1,
            created: 0,
            key: KEY.to_vec(),
        }
    }

    fn record(target: &str, id: &str, since: i64, until: i64) -> ErasureRow {
        ErasureRow {
            key_id: 1,
            target: target.to_owned(),
            hash: Hasher::new(&KEY).hash(id.as_bytes()).to_vec(),
            since,
            until,
            erased: ERASED,
        }
    }

    fn event(kind: Kind, ts: i64, visitor: &str, customer: &str) -> Event {
        let mut event = Event::new(kind, ts);
        event.visitor_id = visitor.into();
        event.customer_id = customer.into();
        event
    }

    /// How many rows of `batch` `list` drops, `markers` carried over.
    fn dropped(list: &List, markers: &mut Markers, batch: &Batch) -> usize {
        batch
            .rows()
            .filter(|row| !keeps(list, markers, row))
            .count()
    }

    /// The (visitor, ts) of the events `list` lets through, in order.
    fn kept(list: &List, events: &[Event]) -> Vec<(String, i64)> {
        let batch = Batch::of(Uuid::from_u128(9), events);
        let mut markers = Markers::default();
        batch
            .rows()
            .filter(|row| keeps(list, &mut markers, row))
            .map(|row| {
                let owner = row_binary::owner(row).unwrap();
                (
                    String::from_utf8(owner.visitor_id.to_vec()).unwrap(),
                    owner.ts,
                )
            })
            .collect()
    }

    fn visits(rows: &[(&str, i64)]) -> Vec<(String, i64)> {
        rows.iter().map(|(v, t)| ((*v).to_owned(), *t)).collect()
    }

    #[test]
    fn an_erased_visitors_rows_before_the_erasure_are_dropped_and_later_ones_kept() {
        let list = List::new(&[key()], &[record(erasure::VISITOR, "gone", 0, ERASED)]);
        let events = [
            event(Kind::Pageview, 5, "gone", ""),
            event(Kind::Pageview, 6, "other", ""),
            event(Kind::Engagement, 7, "gone", "shop-customer"),
            event(Kind::Pageview, ERASED - 1, "gone", ""),
            event(Kind::Pageview, ERASED, "gone", ""),
            event(Kind::Pageview, ERASED + 5, "other", ""),
        ];
        assert_eq!(
            kept(&list, &events),
            visits(&[("other", 6), ("gone", ERASED), ("other", ERASED + 5)])
        );
    }

    #[test]
    fn nothing_is_dropped_without_erasures_or_under_an_unknown_key() {
        let events = [event(Kind::Pageview, 5, "gone", "")];
        assert_eq!(kept(&List::default(), &events), visits(&[("gone", 5)]));
        let mut other_key = record(erasure::VISITOR, "gone", 0, ERASED);
        other_key.key_id = 2;
        let list = List::new(&[key()], &[other_key]);
        assert!(list.is_empty());
        let unknown = List::new(&[key()], &[record("person", "gone", 0, ERASED)]);
        assert!(unknown.is_empty());
    }

    #[test]
    fn a_customers_own_rows_and_email_opens_are_dropped() {
        let list = List::new(&[key()], &[record(erasure::CUSTOMER, "alice", 0, ERASED)]);
        let mut open = event(Kind::EmailOpen, 8, "", "");
        open.recipient = "alice".into();
        let mut someone_elses = event(Kind::EmailOpen, 9, "", "");
        someone_elses.recipient = "bob".into();
        let events = [
            event(Kind::Pageview, 5, "v1", "alice"),
            event(Kind::Pageview, 6, "v2", "bob"),
            open,
            someone_elses,
            event(Kind::Pageview, ERASED + 1, "v1", "alice"),
        ];
        assert_eq!(
            kept(&list, &events),
            visits(&[("v2", 6), ("", 9), ("v1", ERASED + 1)])
        );
    }

    #[test]
    fn a_customers_browser_is_theirs_only_in_their_stretches() {
        let list = List::new(
            &[key()],
            &[
                record(erasure::CUSTOMER, "alice", 0, ERASED),
                record(erasure::BROWSER, "shared", 100, 200),
                record(erasure::BROWSER, "shared", 500, ERASED),
            ],
        );
        let events = [
            event(Kind::Pageview, 50, "shared", ""),
            event(Kind::Pageview, 150, "shared", ""),
            event(Kind::Pageview, 300, "shared", ""),
            event(Kind::Pageview, 600, "shared", ""),
            event(Kind::Pageview, ERASED + 1, "shared", ""),
        ];
        assert_eq!(
            kept(&list, &events),
            visits(&[("shared", 50), ("shared", 300), ("shared", ERASED + 1)])
        );
    }

    #[test]
    fn links_and_sign_outs_in_the_spool_hand_a_browser_over() {
        let list = List::new(
            &[key()],
            &[
                record(erasure::CUSTOMER, "alice", 0, ERASED),
                record(erasure::BROWSER, "shared", 100, ERASED),
            ],
        );
        let events = [
            // Alice's open stretch, until Bob signs in on the same browser…
            event(Kind::Pageview, 150, "shared", ""),
            event(Kind::Pageview, 160, "shared", "bob"),
            event(Kind::Pageview, 170, "shared", ""),
            // …and a new browser Alice first links while the spool holds her rows…
            event(Kind::Pageview, 200, "new", ""),
            event(Kind::Pageview, 210, "new", "alice"),
            event(Kind::Custom, 220, "new", ""),
            // …until she signs out there.
            event(Kind::Signout, 230, "new", ""),
            event(Kind::Pageview, 240, "new", ""),
        ];
        assert_eq!(
            kept(&list, &events),
            visits(&[
                ("shared", 160),
                ("shared", 170),
                ("new", 200),
                ("new", 230),
                ("new", 240),
            ])
        );
    }

    #[test]
    fn markers_carry_over_to_the_next_batch() {
        let list = List::new(&[key()], &[record(erasure::CUSTOMER, "alice", 0, ERASED)]);
        let mut markers = Markers::default();
        let first = Batch::of(Uuid::nil(), &[event(Kind::Pageview, 10, "new", "alice")]);
        assert_eq!(dropped(&list, &mut markers, &first), 1);
        let second = Batch::of(Uuid::nil(), &[event(Kind::Pageview, 20, "new", "")]);
        assert_eq!(dropped(&list, &mut markers, &second), 1);
        assert!(
            markers.0.len() == 1,
            "only the browsers that matter are followed"
        );
    }

    #[test]
    fn bytes_that_are_not_a_row_are_kept() {
        let list = List::new(&[key()], &[record(erasure::VISITOR, "gone", 0, ERASED)]);
        assert!(keeps(&list, &mut Markers::default(), b"short"));
    }
}
