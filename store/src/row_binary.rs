//! Events as ClickHouse RowBinary rows, written once, when a hit is spooled.
//!
//! The spool keeps each event as one row of [`COLUMNS`], written here as its hit is answered,
//! and the inserter never decodes it: it reads the few fields an erasure needs where they lie
//! ([`owner`], [`timestamp`]) and cuts the row into the columns of a `Native` block at its
//! field boundaries ([`crate::native`]; the values' bytes are the same in both forms). One
//! serialisation per hit instead of three (postcard into the spool, postcard back out,
//! RowBinary into the insert), which cost 0.28 + 0.61 + 0.7 µs of CPU per event. The
//! `clickhouse` crate cannot take part: its RowBinary serializer is private to its `Insert`,
//! which only accepts typed rows.
//!
//! The format, per column type (all integers little-endian): `String` and `LowCardinality(String)`
//! are a LEB128 length and the bytes; `UUID` its two 64-bit halves, high half first, each
//! little-endian; `DateTime64(3)` an `i64` of milliseconds; `UInt32`, `UInt64` as such; `Bool`
//! one byte, 0 or 1; `UInt8` one byte; `Map(String, String)` a LEB128 count and
//! then each key and value as strings.

use crate::event::Event;

/// The columns of `events` in the order [`encode`] writes them, with their ClickHouse types
/// (a block names each, and ClickHouse refuses an insert whose columns it cannot take).
pub const COLUMNS: &[(&str, &str)] = &[
    ("event_id", "UUID"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("site", "LowCardinality(String)"),
    ("kind", "LowCardinality(String)"),
    ("visitor_id", "String"),
    ("pageview_id", "String"),
    ("customer_id", "String"),
    ("url", "String"),
    ("host", "LowCardinality(String)"),
    ("path", "String"),
    ("title", "String"),
    ("referrer", "String"),
    ("referrer_host", "LowCardinality(String)"),
    ("utm_source", "LowCardinality(String)"),
    ("utm_medium", "LowCardinality(String)"),
    ("utm_campaign", "LowCardinality(String)"),
    ("utm_term", "String"),
    ("utm_content", "String"),
    ("dwell_ms", "UInt32"),
    ("ip_key_id", "UInt64"),
    ("ip_sealed", "String"),
    ("ip_prefix", "LowCardinality(String)"),
    ("country", "LowCardinality(String)"),
    ("region", "LowCardinality(String)"),
    ("city", "LowCardinality(String)"),
    ("browser", "LowCardinality(String)"),
    ("os", "LowCardinality(String)"),
    ("device", "LowCardinality(String)"),
    ("is_bot", "Bool"),
    ("user_agent", "String"),
    ("campaign", "LowCardinality(String)"),
    ("recipient", "String"),
    ("via_proxy", "Bool"),
    ("event_name", "LowCardinality(String)"),
    ("props", "Map(String, String)"),
    ("scroll_depth", "UInt8"),
    ("browser_version", "LowCardinality(String)"),
    ("os_version", "LowCardinality(String)"),
];

/// The `ts` of a row [`encode`] wrote (it follows the 16-byte event id), or `None` for bytes
/// too short to be a row.
pub fn timestamp(row: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(row.get(16..24)?.try_into().ok()?))
}

/// What a row says about whose it is: read back from the spooled bytes by the collector, which
/// drops the rows of erased subjects ([`crate::erasure`]) without decoding whole events.
pub struct Owner<'a> {
    pub ts: i64,
    pub kind: &'a [u8],
    pub visitor_id: &'a [u8],
    pub customer_id: &'a [u8],
    pub recipient: &'a [u8],
}

/// The [`Owner`] of a row [`encode`] wrote, or `None` for bytes that are not one.
pub fn owner(row: &[u8]) -> Option<Owner<'_>> {
    let mut at = 24;
    let at = &mut at;
    skip_strings(row, at, 1)?; // site
    let kind = read_string(row, at)?;
    let visitor_id = read_string(row, at)?;
    skip_strings(row, at, 1)?; // pageview_id
    let customer_id = read_string(row, at)?;
    skip_strings(row, at, 11)?; // url … utm_content
    *at = at.checked_add(12)?; // dwell_ms, ip_key_id
    skip_strings(row, at, 8)?; // ip_sealed, ip_prefix … device
    *at += 1; // is_bot
    skip_strings(row, at, 2)?; // user_agent, campaign
    let recipient = read_string(row, at)?;
    Some(Owner {
        ts: timestamp(row)?,
        kind,
        visitor_id,
        customer_id,
        recipient,
    })
}

fn skip_strings(row: &[u8], at: &mut usize, n: usize) -> Option<()> {
    for _ in 0..n {
        read_string(row, at)?;
    }
    Some(())
}

/// The string at `*at` in `row`, moving `*at` past it.
pub(crate) fn read_string<'a>(row: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = read_len(row, at)?;
    let end = at.checked_add(len)?;
    let bytes = row.get(*at..end)?;
    *at = end;
    Some(bytes)
}

/// Appends `event` to `out` as one row of [`COLUMNS`].
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    let (high, low) = event.event_id.as_u64_pair();
    out.extend_from_slice(&high.to_le_bytes());
    out.extend_from_slice(&low.to_le_bytes());
    out.extend_from_slice(&event.ts.to_le_bytes());
    for text in [
        event.site.as_str(),
        event.kind.as_str(),
        &event.visitor_id,
        &event.pageview_id,
        &event.customer_id,
        &event.url,
        &event.host,
        &event.path,
        &event.title,
        &event.referrer,
        &event.referrer_host,
        &event.utm_source,
        &event.utm_medium,
        &event.utm_campaign,
        &event.utm_term,
        &event.utm_content,
    ] {
        string(text.as_bytes(), out);
    }
    out.extend_from_slice(&event.dwell_ms.to_le_bytes());
    out.extend_from_slice(&event.ip_key_id.to_le_bytes());
    string(event.ip_sealed.0.as_ref().map_or(&[][..], |b| &b[..]), out);
    for text in [
        &event.ip_prefix,
        &event.country,
        &event.region,
        &event.city,
        &event.browser,
        &event.os,
        &event.device,
    ] {
        string(text.as_bytes(), out);
    }
    out.push(u8::from(event.is_bot));
    string(event.user_agent.as_bytes(), out);
    string(event.campaign.as_bytes(), out);
    string(event.recipient.as_bytes(), out);
    out.push(u8::from(event.via_proxy));
    string(event.event_name.as_bytes(), out);
    leb128(event.props.len(), out);
    for (key, value) in &event.props {
        string(key.as_bytes(), out);
        string(value.as_bytes(), out);
    }
    out.push(event.scroll_depth);
    string(event.browser_version.as_bytes(), out);
    string(event.os_version.as_bytes(), out);
}

/// The LEB128 length or count at `*at` in `row`, moving `*at` past it.
pub(crate) fn read_len(row: &[u8], at: &mut usize) -> Option<usize> {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = *row.get(*at)?;
        *at += 1;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some(len);
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
}

pub(crate) fn string(bytes: &[u8], out: &mut Vec<u8>) {
    leb128(bytes.len(), out);
    out.extend_from_slice(bytes);
}

pub(crate) fn leb128(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    #[test]
    fn lengths_are_leb128() {
        let cases: [(usize, &[u8]); 5] = [
            (0, &[0]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16_384, &[0x80, 0x80, 0x01]),
        ];
        for (n, bytes) in cases {
            let mut out = Vec::new();
            leb128(n, &mut out);
            assert_eq!(out, bytes, "{n}");
        }
    }

    #[test]
    fn a_row_is_laid_out_column_by_column() {
        let mut event = Event::new(Kind::Engagement, -1);
        event.event_id = uuid::Uuid::from_u128(0x0102030405060708_1112131415161718);
        event.site = "s".into();
        event.dwell_ms = 0x0a0b0c0d;
        event.ip_key_id = u64::MAX;
        event.is_bot = true;
        event.recipient = "r".repeat(200).into();
        event.via_proxy = true;
        event.props = vec![("k".into(), "v".into()), ("".into(), "w".into())];
        event.scroll_depth = 90;
        let mut row = Vec::new();
        encode(&event, &mut row);

        let mut expected = vec![8, 7, 6, 5, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13];
        expected.extend_from_slice(&[0x12, 0x11]);
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(b"\x01s\x0aengagement");
        expected.extend_from_slice(&[0; 14]);
        expected.extend_from_slice(&[0x0d, 0x0c, 0x0b, 0x0a]);
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&[0; 8]);
        expected.push(1);
        expected.extend_from_slice(&[0, 0]);
        expected.extend_from_slice(&[0xc8, 0x01]);
        expected.extend_from_slice(&[b'r'; 200]);
        expected.push(1);
        expected.extend_from_slice(b"\x00\x02\x01k\x01v\x00\x01w");
        expected.push(90);
        expected.extend_from_slice(&[0, 0]);
        assert_eq!(row, expected);
        assert_eq!(timestamp(&row), Some(-1));
        assert_eq!(timestamp(&row[..23]), None);
    }

    #[test]
    fn a_row_tells_whose_it_is() {
        let mut event = Event::new(Kind::EmailOpen, 42);
        event.site = "s".into();
        event.visitor_id = "v".repeat(130).into();
        event.pageview_id = "p".into();
        event.customer_id = "c".into();
        event.url = "u".repeat(300).into();
        event.utm_content = "x".into();
        event.ip_sealed = crate::event::SealedIp(Some([9; footfall_seal::SEALED_IP_LEN]));
        event.device = "d".into();
        event.user_agent = "ua".into();
        event.campaign = "camp".into();
        event.recipient = "r@x".into();
        event.props = vec![("k".into(), "v".into())];
        let mut row = Vec::new();
        encode(&event, &mut row);
        let owner = owner(&row).unwrap();
        assert_eq!(owner.ts, 42);
        assert_eq!(owner.kind, b"email_open");
        assert_eq!(owner.visitor_id, "v".repeat(130).as_bytes());
        assert_eq!(owner.customer_id, b"c");
        assert_eq!(owner.recipient, b"r@x");
        for cut in [0, 23, 30, 200, 500] {
            assert!(super::owner(&row[..cut]).is_none(), "{cut}");
        }
    }

    #[test]
    fn every_column_is_named_once() {
        let mut names: Vec<_> = COLUMNS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len());
    }
}
