//! Spooled rows cut into the columns of a `Native` block (`footfall_store::native`), against a
//! reader written for the check: a row is taken exactly when it lies along the columns' types
//! with nothing left over, and the rows a block took come back byte for byte when its columns
//! are read by the types it names and put together again, row by row.
#![no_main]

use footfall_store::native::Block;
use footfall_store::row_binary::COLUMNS;
use libfuzzer_sys::fuzz_target;

/// A LEB128 number at `*at`, as ClickHouse reads one (at most five bytes here).
fn leb128(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..=35).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        n |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(n);
        }
    }
    None
}

/// The bytes of the string at `*at`, its length included.
fn string<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let start = *at;
    let len = leb128(bytes, at)?;
    let end = at.checked_add(len)?;
    bytes.get(*at..end)?;
    *at = end;
    Some(&bytes[start..end])
}

fn fixed(kind: &str) -> Option<usize> {
    match kind {
        "UUID" => Some(16),
        "DateTime64(3, 'UTC')" | "UInt64" => Some(8),
        "UInt32" => Some(4),
        "Bool" | "UInt8" => Some(1),
        _ => None,
    }
}

/// Whether `row` lies along the columns' types with nothing left over.
fn is_row(row: &[u8]) -> bool {
    let mut at = 0;
    for (_, kind) in COLUMNS {
        let ok = if let Some(n) = fixed(kind) {
            at += n;
            at <= row.len()
        } else if kind.starts_with("Map") {
            leb128(row, &mut at).is_some_and(|n| {
                (0..2 * n).all(|_| string(row, &mut at).is_some())
            })
        } else {
            string(row, &mut at).is_some()
        };
        if !ok {
            return false;
        }
    }
    at == row.len()
}

/// The rows of a written block, put together again from its columns.
fn rows_of(block: &[u8]) -> Vec<Vec<u8>> {
    let mut at = 0;
    let columns = leb128(block, &mut at).unwrap();
    let rows = leb128(block, &mut at).unwrap();
    assert_eq!(columns, COLUMNS.len());
    let mut out = vec![Vec::new(); rows];
    for (name, kind) in COLUMNS {
        assert_eq!(&string(block, &mut at).unwrap()[1..], name.as_bytes());
        let declared = &string(block, &mut at).unwrap()[1..];
        if let Some(n) = fixed(kind) {
            assert_eq!(declared, kind.as_bytes());
            for row in &mut out {
                row.extend_from_slice(&block[at..at + n]);
                at += n;
            }
        } else if kind.starts_with("Map") {
            assert_eq!(declared, kind.as_bytes());
            let mut ends = Vec::new();
            for _ in 0..rows {
                ends.push(u64::from_le_bytes(block[at..at + 8].try_into().unwrap()) as usize);
                at += 8;
            }
            let total = ends.last().copied().unwrap_or(0);
            let keys: Vec<_> = (0..total).map(|_| string(block, &mut at).unwrap()).collect();
            let values: Vec<_> = (0..total).map(|_| string(block, &mut at).unwrap()).collect();
            let mut start = 0;
            for (row, &end) in out.iter_mut().zip(&ends) {
                let mut count = Vec::new();
                let mut n = end - start;
                while n >= 0x80 {
                    count.push((n as u8) | 0x80);
                    n >>= 7;
                }
                count.push(n as u8);
                row.extend_from_slice(&count);
                for i in start..end {
                    row.extend_from_slice(keys[i]);
                    row.extend_from_slice(values[i]);
                }
                start = end;
            }
        } else {
            assert_eq!(declared, b"String");
            for row in &mut out {
                row.extend_from_slice(string(block, &mut at).unwrap());
            }
        }
    }
    assert_eq!(at, block.len(), "nothing after the last column");
    out
}

fuzz_target!(|data: &[u8]| {
    // Rows, each after a two-byte length. A refused row spoils its block: start another.
    let (mut block, mut taken) = (Block::new(), Vec::new());
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let row = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let accepted = block.push(row).is_ok();
        assert_eq!(accepted, is_row(row), "{row:?}");
        if accepted {
            taken.push(row.to_vec());
        } else {
            (block, taken) = (Block::new(), Vec::new());
        }
    }
    let mut written = Vec::new();
    block.write_to(&mut written);
    assert_eq!(rows_of(&written), taken);
});
