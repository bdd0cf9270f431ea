//! Spooled rows gathered into ClickHouse `Native` blocks: the form an insert sends them in.
//!
//! The spool keeps each event as the RowBinary row [`crate::row_binary`] wrote when its hit was
//! answered. ClickHouse takes inserts in that form, but reading rows costs it about 4 µs an
//! event: a third of all it spends on one, and more than the collector spends answering the
//! hit (`benches/clickhouse_cost.sh`: 12.5 against 8.5 µs per event with the rollups, 7.5
//! against 3 µs into `events` alone). A `Native` block holds each column's values back to back,
//! as ClickHouse keeps them. Both forms encode a value alike (a string as its LEB128 length and
//! bytes, integers little-endian, a UUID as its two halves), so a row becomes a block's columns
//! by cutting it at its fields and appending each field's bytes to its column: no value is
//! decoded or encoded again. A map is the one column laid out differently: a block holds every
//! row's entry count as running offsets, then all keys, then all values.
//!
//! `LowCardinality(String)` columns go as `String`, and ClickHouse builds their dictionaries
//! itself: blocks with dictionaries saved it another 0.6 µs an event, for an encoder of ours
//! that would have to keep a dictionary per column.

use crate::row_binary::{self, COLUMNS};

/// How one column of [`COLUMNS`] lies in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// That many bytes.
    Fixed(usize),
    /// A LEB128 length, then the bytes.
    String,
    /// A LEB128 entry count, then each key and value as strings.
    Map,
}

impl Layout {
    /// The layout of a [`COLUMNS`] type; `None` for a type this module does not know.
    fn of(kind: &str) -> Option<Self> {
        Some(match kind {
            "UUID" => Self::Fixed(16),
            "DateTime64(3, 'UTC')" | "UInt64" => Self::Fixed(8),
            "UInt32" => Self::Fixed(4),
            "Bool" | "UInt8" => Self::Fixed(1),
            "String" | "LowCardinality(String)" => Self::String,
            "Map(String, String)" => Self::Map,
            _ => return None,
        })
    }
}

/// The type a block declares for a column: ClickHouse converts a `String` column into the
/// table's `LowCardinality(String)`.
fn block_type(kind: &'static str) -> &'static str {
    match kind {
        "LowCardinality(String)" => "String",
        other => other,
    }
}

/// Bytes that are not a row of [`COLUMNS`] (cut short, with bytes left over, or of another
/// layout): retrying cannot make them one.
#[derive(Debug, thiserror::Error)]
#[error("a spooled row is not a row of the events table: {0}")]
pub struct NotARow(&'static str);

/// One column's bytes in the block being gathered.
struct Column {
    name: &'static str,
    kind: &'static str,
    layout: Layout,
    /// The values; for a map, the running entry counts (`UInt64`).
    data: Vec<u8>,
    /// A map's keys and values, and how many entries it holds so far.
    keys: Vec<u8>,
    values: Vec<u8>,
    entries: u64,
}

/// Rows gathered column by column, written out as one `Native` block at a time.
pub struct Block {
    columns: Vec<Column>,
    rows: u64,
    bytes: usize,
}

impl Default for Block {
    fn default() -> Self {
        Self::new()
    }
}

impl Block {
    pub fn new() -> Self {
        let columns = COLUMNS
            .iter()
            .map(|&(name, kind)| Column {
                name,
                kind: block_type(kind),
                layout: Layout::of(kind).expect("every column's type has a layout (tested)"),
                data: Vec::new(),
                keys: Vec::new(),
                values: Vec::new(),
                entries: 0,
            })
            .collect();
        Self {
            columns,
            rows: 0,
            bytes: 0,
        }
    }

    /// Rows gathered since the last [`Block::write_to`].
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// About the bytes the block holds (the rows' own length).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a row [`row_binary::encode`] wrote. On an error the block holds part of the row
    /// and must not be written: the insert it was for fails.
    pub fn push(&mut self, row: &[u8]) -> Result<(), NotARow> {
        let mut at = 0usize;
        for column in &mut self.columns {
            let start = at;
            match column.layout {
                Layout::Fixed(n) => at = at.checked_add(n).ok_or(NotARow("too long"))?,
                Layout::String => {
                    row_binary::read_string(row, &mut at).ok_or(NotARow("cut short"))?;
                }
                Layout::Map => {
                    let entries = row_binary::read_len(row, &mut at).ok_or(NotARow("cut short"))?;
                    for _ in 0..entries {
                        let key = at;
                        row_binary::read_string(row, &mut at).ok_or(NotARow("cut short"))?;
                        let value = at;
                        row_binary::read_string(row, &mut at).ok_or(NotARow("cut short"))?;
                        column.keys.extend_from_slice(&row[key..value]);
                        column.values.extend_from_slice(&row[value..at]);
                    }
                    column.entries += entries as u64;
                    column.data.extend_from_slice(&column.entries.to_le_bytes());
                    continue;
                }
            }
            let field = row.get(start..at).ok_or(NotARow("cut short"))?;
            column.data.extend_from_slice(field);
        }
        if at != row.len() {
            return Err(NotARow("bytes after the last column"));
        }
        self.rows += 1;
        self.bytes += row.len();
        Ok(())
    }

    /// Appends the rows gathered as one `Native` block (the column and row counts, then each
    /// column's name, type and values) to `out`, and empties the block, keeping its buffers.
    pub fn write_to(&mut self, out: &mut Vec<u8>) {
        // All of it at once: a buffer regrown by doubling past 1 MiB copied the block again
        // and doubled the memory it faulted in.
        let values: usize = (self.columns.iter())
            .map(|column| column.data.len() + column.keys.len() + column.values.len())
            .sum();
        out.reserve(values + 64 * (self.columns.len() + 1));
        row_binary::leb128(self.columns.len(), out);
        row_binary::leb128(self.rows as usize, out);
        for column in &mut self.columns {
            row_binary::string(column.name.as_bytes(), out);
            row_binary::string(column.kind.as_bytes(), out);
            out.extend_from_slice(&column.data);
            out.extend_from_slice(&column.keys);
            out.extend_from_slice(&column.values);
            column.data.clear();
            column.keys.clear();
            column.values.clear();
            column.entries = 0;
        }
        self.rows = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Kind};

    #[test]
    fn every_column_type_has_a_layout() {
        for (name, kind) in COLUMNS {
            assert!(Layout::of(kind).is_some(), "{name}: {kind}");
        }
    }

    fn row(event: &Event) -> Vec<u8> {
        let mut row = Vec::new();
        row_binary::encode(event, &mut row);
        row
    }

    /// Reads a block back: each column's name, type and raw bytes, by the same layouts.
    fn columns_of(block: &[u8], rows: usize) -> Vec<(String, String, Vec<u8>)> {
        let mut at = 0;
        let columns = row_binary::read_len(block, &mut at).unwrap();
        assert_eq!(row_binary::read_len(block, &mut at), Some(rows));
        let text = |at: &mut usize| {
            String::from_utf8(row_binary::read_string(block, at).unwrap().to_vec()).unwrap()
        };
        let mut out = Vec::new();
        for (_, kind) in COLUMNS.iter().take(columns) {
            let (name, declared) = (text(&mut at), text(&mut at));
            let start = at;
            match Layout::of(kind).unwrap() {
                Layout::Fixed(n) => at += n * rows,
                Layout::String => (0..rows).for_each(|_| {
                    row_binary::read_string(block, &mut at).unwrap();
                }),
                Layout::Map => {
                    at += 8 * rows;
                    let entries = u64::from_le_bytes(block[at - 8..at].try_into().unwrap());
                    (0..2 * entries).for_each(|_| {
                        row_binary::read_string(block, &mut at).unwrap();
                    });
                }
            }
            out.push((name, declared, block[start..at].to_vec()));
        }
        assert_eq!(at, block.len(), "nothing after the last column");
        out
    }

    #[test]
    fn rows_become_columns_value_for_value() {
        let mut first = Event::new(Kind::Custom, 7);
        first.event_id = uuid::Uuid::from_u128(0x0102_0304_0506_0708_1112_1314_1516_1718);
        first.site = "s".into();
        first.dwell_ms = 9;
        first.props = vec![
            ("k".into(), "v".into()),
            ("long".into(), "x".repeat(200).into()),
        ];
        let mut second = Event::new(Kind::Pageview, 8);
        second.site = "other".into();
        second.is_bot = true;
        let mut third = Event::new(Kind::Pageview, 9);
        third.props = vec![("k2".into(), "".into())];
        let mut block = Block::new();
        for event in [&first, &second, &third] {
            block.push(&row(event)).unwrap();
        }
        assert_eq!(block.rows(), 3);
        let mut out = Vec::new();
        block.write_to(&mut out);
        assert_eq!((block.rows(), block.bytes()), (0, 0), "emptied");

        let columns = columns_of(&out, 3);
        assert_eq!(columns.len(), COLUMNS.len());
        let column = |name: &str| columns.iter().find(|c| c.0 == name).unwrap();
        let ids: Vec<u8> = [&first, &second, &third]
            .iter()
            .flat_map(|e| row(e)[..16].to_vec())
            .collect();
        assert_eq!(column("event_id").2, ids);
        assert_eq!(column("event_id").1, "UUID");
        assert_eq!(column("ts").2, [7i64, 8, 9].map(i64::to_le_bytes).concat());
        assert_eq!(column("site").1, "String", "LowCardinality goes as String");
        assert_eq!(column("site").2, b"\x01s\x05other\x00");
        assert_eq!(
            column("dwell_ms").2,
            [9u32, 0, 0].map(u32::to_le_bytes).concat()
        );
        assert_eq!(column("is_bot").2, [0, 1, 0]);
        let props = &column("props").2;
        assert_eq!(props[..24], [2u64, 2, 3].map(u64::to_le_bytes).concat());
        let mut keys_then_values = b"\x01k\x04long\x02k2\x01v\xc8\x01".to_vec();
        keys_then_values.extend_from_slice(&[b'x'; 200]);
        keys_then_values.push(0);
        assert_eq!(props[24..], keys_then_values);

        block.push(&row(&second)).unwrap();
        let mut again = Vec::new();
        block.write_to(&mut again);
        assert_eq!(
            columns_of(&again, 1)[2].2,
            b"\x05other",
            "buffers kept, values not"
        );
    }

    #[test]
    fn bytes_that_are_not_a_row_are_refused() {
        let whole = row(&Event::new(Kind::Pageview, 1));
        for bad in [&whole[..whole.len() - 1], &whole[..30], &[][..]] {
            assert!(Block::new().push(bad).is_err(), "{} bytes", bad.len());
        }
        let mut longer = whole.clone();
        longer.push(0);
        assert!(Block::new().push(&longer).is_err(), "a byte left over");
        assert!(Block::new().push(&whole).is_ok());
    }
}
