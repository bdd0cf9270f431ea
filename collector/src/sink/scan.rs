//! Reading one segment frame by frame, resynchronising after damage.
//!
//! The [`Scanner`] reads a segment in chunks and yields its frames in order. Where no valid
//! frame starts, it skips to the next sync marker whose frame checks ([`frame::find_sync`]) and
//! reports the bytes it skipped and where, so damage costs only the damaged bytes and is always
//! counted. At the end it reports how many bytes form an unfinished frame: a frame still being
//! written in the newest segment, or a write cut short anywhere else.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;

use super::frame::{self, Decoded, FrameKind};

/// How much is read from a segment at a time (a larger frame takes several reads).
const CHUNK_BYTES: u64 = 256 << 10;

/// One step through a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole frame at `offset`; its payload is [`Scanner::payload`].
    Frame {
        kind: FrameKind,
        offset: u64,
        len: u64,
    },
    /// `len` bytes from `offset` on that hold no valid frame.
    Skipped { offset: u64, len: u64 },
    /// The end of the file; the last `tail` bytes are the start of a frame not (yet) whole.
    End { tail: u64 },
}

pub struct Scanner {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    at: usize,
    eof: bool,
    skipped: Option<(u64, u64)>,
    payload: Range<usize>,
}

impl Scanner {
    /// Scans `file` from `offset` on.
    pub fn new(mut file: File, offset: u64) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            file,
            buf: Vec::with_capacity(2 * CHUNK_BYTES as usize),
            base: offset,
            at: 0,
            eof: false,
            skipped: None,
            payload: 0..0,
        })
    }

    /// The offset of the next byte not yet scanned.
    pub fn offset(&self) -> u64 {
        self.base + self.at as u64
    }

    /// The payload of the last [`Item::Frame`].
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.payload.clone()]
    }

    pub fn next_item(&mut self) -> io::Result<Item> {
        loop {
            match frame::decode(&self.buf[self.at..]) {
                Decoded::Frame { kind, len, .. } => {
                    if let Some((offset, len)) = self.skipped.take() {
                        return Ok(Item::Skipped { offset, len });
                    }
                    let offset = self.offset();
                    self.payload = self.at + frame::HEADER_LEN + 1..self.at + len;
                    self.at += len;
                    return Ok(Item::Frame {
                        kind,
                        offset,
                        len: len as u64,
                    });
                }
                Decoded::Incomplete if self.eof => {
                    if let Some((offset, len)) = self.skipped.take() {
                        return Ok(Item::Skipped { offset, len });
                    }
                    return Ok(Item::End {
                        tail: (self.buf.len() - self.at) as u64,
                    });
                }
                Decoded::Incomplete => self.refill()?,
                Decoded::Corrupt => {
                    let n = frame::find_sync(&self.buf[self.at..]);
                    let offset = self.offset();
                    let (start, len) = self.skipped.get_or_insert((offset, 0));
                    *len = offset + n as u64 - *start;
                    self.at += n;
                }
            }
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.buf.drain(..self.at);
        self.base += self.at as u64;
        self.at = 0;
        let read = Read::by_ref(&mut self.file)
            .take(CHUNK_BYTES)
            .read_to_end(&mut self.buf)?;
        self.eof = read == 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(bytes: &[u8]) -> Vec<Item> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, bytes).unwrap();
        let mut scanner = Scanner::new(File::open(&path).unwrap(), 0).unwrap();
        let mut items = Vec::new();
        loop {
            let item = scanner.next_item().unwrap();
            let end = matches!(item, Item::End { .. });
            items.push(item);
            if end {
                return items;
            }
        }
    }

    #[test]
    fn damage_costs_the_damaged_bytes_and_is_reported_where() {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for i in 0..5u8 {
            starts.push(bytes.len() as u64);
            frame::encode(FrameKind::Row, &vec![i; 100 + i as usize], &mut bytes);
        }
        let mut damaged = bytes.clone();
        damaged[starts[1] as usize + 4] ^= 1; // record 1's length
        damaged[starts[3] as usize + 40] ^= 1; // record 3's payload
        let items = scan_all(&damaged);
        let frames: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Item::Frame { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(frames, [starts[0], starts[2], starts[4]]);
        assert!(items.contains(&Item::Skipped {
            offset: starts[1],
            len: starts[2] - starts[1]
        }));
        assert!(items.contains(&Item::Skipped {
            offset: starts[3],
            len: starts[4] - starts[3]
        }));
        assert_eq!(items.last(), Some(&Item::End { tail: 0 }));
    }

    #[test]
    fn bytes_cut_out_of_the_middle_cost_the_records_they_touch() {
        let mut bytes = Vec::new();
        for i in 0..50u8 {
            frame::encode(FrameKind::Row, &[i; 300], &mut bytes);
        }
        let frame_len = bytes.len() / 50;
        let cut_at = 10 * frame_len + 100;
        bytes.drain(cut_at..cut_at + 100);
        let items = scan_all(&bytes);
        let frames = items
            .iter()
            .filter(|i| matches!(i, Item::Frame { .. }))
            .count();
        assert_eq!(frames, 49, "only the record the cut went through is lost");
    }

    #[test]
    fn a_torn_last_frame_is_the_tail_and_zeroes_are_skipped() {
        let mut bytes = Vec::new();
        frame::encode(FrameKind::Row, &[1; 100], &mut bytes);
        bytes.extend_from_slice(&[0; 4096]);
        let good = bytes.len();
        frame::encode(FrameKind::Row, &[2; 100], &mut bytes);
        frame::encode(FrameKind::Row, &[3; 100], &mut bytes);
        bytes.truncate(bytes.len() - 30);
        let items = scan_all(&bytes);
        assert_eq!(items.len(), 4, "{items:?}");
        assert_eq!(
            items[1],
            Item::Skipped {
                offset: good as u64 - 4096,
                len: 4096
            }
        );
        assert_eq!(
            items[3],
            Item::End {
                tail: (bytes.len() - good - 117) as u64
            }
        );
    }
}
