//! The spool's record framing: what one record looks like on disk, how a reader tells a whole
//! record from a torn or damaged one, and how it finds the next whole record after damage.
//!
//! A frame is `[sync: 4][length: u32 LE][body crc32c: u32 LE][header crc32c: u32 LE][body]`,
//! where the body is a kind byte and the payload, `length` counts the body, and the header
//! checksum covers the 12 bytes before it. The sync marker and the header checksum are what let
//! a reader resynchronise: after damage it looks for the next marker whose header checks, so a
//! damaged record costs that record, never the rest of the segment. Without a header checksum a
//! damaged length field would hide every later record (it did: one bad length lost ~2,100 hits
//! of 3,008); 4 bytes of marker and 4 of checksum per record (some 300 bytes) are the price.
//!
//! A write cut short (a crash, a full disk) leaves a prefix of a valid frame, which decodes as
//! [`Decoded::Incomplete`], never as damage and never as data.

/// Bytes before the body.
pub const HEADER_LEN: usize = 16;
/// Largest body accepted: a bound on what a damaged (yet checksum-passing) length can claim.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Starts every frame. Bytes unlikely in text and in small integers, so that payloads rarely
/// hold a marker that a resynchronising reader must first reject by its checksum.
const SYNC: [u8; 4] = [0xF7, 0x0F, 0xA1, 0xC5];

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// One IP-sealing epoch key row, postcard-encoded.
    Key = 2,
    /// The end of a batch: the 16-byte insert deduplication token of the events before it.
    Cut = 3,
    /// One event, as [`super::record`] encodes it. (Kind 1 was an event in an earlier,
    /// incompatible record format: it reads as damage, never as data.)
    Row = 4,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
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
    let body_crc = crc32c::crc32c_append(crc32c::crc32c(&[kind as u8]), payload);
    let start = out.len();
    out.extend_from_slice(&SYNC);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..start + 12]);
    out.extend_from_slice(&header_crc.to_le_bytes());
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
    /// The buffer ends inside what may be a valid frame: it is still being written, or a write
    /// was cut short.
    Incomplete,
    /// No valid frame starts here; [`find_sync`] says where the next one may.
    Corrupt,
}

pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let marker = buf.len().min(SYNC.len());
    if buf[..marker] != SYNC[..marker] {
        return Decoded::Corrupt;
    }
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let word = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    if crc32c::crc32c(&buf[..12]) != word(12) {
        return Decoded::Corrupt;
    }
    let length = word(4) as usize;
    if length == 0 || length > MAX_FRAME_LEN {
        return Decoded::Corrupt;
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + length) else {
        return Decoded::Incomplete;
    };
    if crc32c::crc32c(body) != word(8) {
        return Decoded::Corrupt;
    }
    match FrameKind::from_byte(body[0]) {
        Some(kind) => Decoded::Frame {
            kind,
            payload: &body[1..],
            len: HEADER_LEN + length,
        },
        None => Decoded::Corrupt,
    }
}

/// Where in `buf`, after its first byte, the next frame may start: the next sync marker, or a
/// prefix of one at the very end (more bytes may complete it). `buf.len()` when there is none.
pub fn find_sync(buf: &[u8]) -> usize {
    (1..buf.len())
        .find(|&i| {
            let rest = &buf[i..];
            let n = rest.len().min(SYNC.len());
            rest[..n] == SYNC[..n]
        })
        .unwrap_or(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_back_to_back() {
        let mut buf = Vec::new();
        encode(FrameKind::Row, b"hello", &mut buf);
        encode(FrameKind::Cut, &[7; 16], &mut buf);
        let Decoded::Frame { kind, payload, len } = decode(&buf) else {
            panic!()
        };
        assert_eq!((kind, payload), (FrameKind::Row, &b"hello"[..]));
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
        encode(FrameKind::Row, b"payload", &mut buf);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert_eq!(decode(&bad), Decoded::Corrupt, "byte {i}");
        }
        assert_eq!(decode(&[0u8; 64]), Decoded::Corrupt, "zeroed space");
    }

    #[test]
    fn a_damaged_length_cannot_hide_the_next_frame() {
        let mut buf = Vec::new();
        encode(FrameKind::Row, b"first", &mut buf);
        let second = buf.len();
        encode(FrameKind::Row, b"second", &mut buf);
        buf[4] = 0xff;
        assert_eq!(decode(&buf), Decoded::Corrupt);
        assert_eq!(find_sync(&buf), second);
        assert!(
            matches!(decode(&buf[second..]), Decoded::Frame { payload, .. } if payload == b"second")
        );
    }

    #[test]
    fn find_sync_keeps_a_marker_prefix_at_the_end() {
        let mut buf = vec![0u8; 10];
        buf.extend_from_slice(&SYNC[..2]);
        assert_eq!(find_sync(&buf), 10);
        assert_eq!(find_sync(&[1, 2, 3]), 3);
    }
}
