//! The spool's record framing: what one record looks like on disk, and how a reader tells a
//! whole record from a torn or damaged one.
//!
//! A frame is `[length: u32 LE][crc32c: u32 LE][kind: u8][payload]`, where `length` counts the
//! kind byte and the payload and the checksum covers both. A write cut short by a crash leaves
//! a frame whose bytes run out ([`Decoded::Incomplete`]); flipped bits show as a checksum
//! mismatch ([`Decoded::Corrupt`]). Neither is ever taken for data.

/// Bytes before the kind byte.
pub const HEADER_LEN: usize = 8;
/// Largest frame accepted: a bound on what a damaged length field can make a reader allocate.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// One event, postcard-encoded: what spools written before [`FrameKind::Row`] hold. Read
    /// (and encoded as a row) so that an upgrade loses nothing; no longer written.
    Event = 1,
    /// One IP-sealing epoch key row, postcard-encoded.
    Key = 2,
    /// The end of a batch: the 16-byte insert deduplication token of the events before it.
    Cut = 3,
    /// One event as the RowBinary row its insert sends ([`crate::row_binary`]).
    Row = 4,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Event),
            2 => Some(Self::Key),
            3 => Some(Self::Cut),
            4 => Some(Self::Row),
            _ => None,
        }
    }
}

/// Appends one frame to `out`.
pub fn encode(kind: FrameKind, payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(payload.len() + 1).expect("frames are far below 4 GiB");
    let mut crc = crc32c::crc32c(&[kind as u8]);
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

/// The result of reading one frame from the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, intact frame and the number of bytes it took.
    Frame {
        kind: FrameKind,
        payload: &'a [u8],
        len: usize,
    },
    /// The buffer ends inside the frame: it is still being written, or was torn by a crash.
    Incomplete,
    /// A complete frame whose checksum, kind or length is wrong: `skip` bytes cover it, or
    /// `None` when its length field itself cannot be trusted.
    Corrupt { skip: Option<usize> },
}

pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let length = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if length == 0 || length > MAX_FRAME_LEN {
        return Decoded::Corrupt { skip: None };
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + length) else {
        return Decoded::Incomplete;
    };
    let len = HEADER_LEN + length;
    if crc32c::crc32c(body) != crc {
        return Decoded::Corrupt { skip: Some(len) };
    }
    match FrameKind::from_byte(body[0]) {
        Some(kind) => Decoded::Frame {
            kind,
            payload: &body[1..],
            len,
        },
        None => Decoded::Corrupt { skip: Some(len) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_back_to_back() {
        let mut buf = Vec::new();
        encode(FrameKind::Event, b"hello", &mut buf);
        encode(FrameKind::Cut, &[7; 16], &mut buf);
        let Decoded::Frame { kind, payload, len } = decode(&buf) else {
            panic!()
        };
        assert_eq!((kind, payload), (FrameKind::Event, &b"hello"[..]));
        assert_eq!(len, HEADER_LEN + 6);
        let Decoded::Frame { kind, payload, .. } = decode(&buf[len..]) else {
            panic!()
        };
        assert_eq!((kind, payload), (FrameKind::Cut, &[7u8; 16][..]));
    }

    #[test]
    fn every_torn_prefix_is_incomplete_never_data() {
        let mut buf = Vec::new();
        encode(FrameKind::Key, b"some key bytes", &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn flipped_bits_are_detected_anywhere_in_the_frame() {
        let mut buf = Vec::new();
        encode(FrameKind::Event, b"payload", &mut buf);
        for i in 4..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(decode(&bad), Decoded::Corrupt { skip: Some(_) }),
                "byte {i}"
            );
        }
        let mut bad_len = buf.clone();
        bad_len[3] = 0xff;
        assert_eq!(decode(&bad_len), Decoded::Corrupt { skip: None });
        assert_eq!(
            decode(&[0u8; 16]),
            Decoded::Corrupt { skip: None },
            "zeroed space is not a frame"
        );
    }
}
