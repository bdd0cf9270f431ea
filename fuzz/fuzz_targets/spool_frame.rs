//! The spool's frame decoder, as recovery runs it over whatever a crash left on disk: it never
//! panics, never reads past the buffer, every frame it accepts has valid checksums, and
//! resynchronising after damage always moves forward.
#![no_main]

use footfall_collector::sink::frame::{self, Decoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while at < data.len() {
        match frame::decode(&data[at..]) {
            Decoded::Frame { payload, len, .. } => {
                assert!(len > payload.len() && at + len <= data.len());
                let mut again = Vec::new();
                let kind = match data[at + frame::HEADER_LEN] {
                    1 => frame::FrameKind::Row,
                    2 => frame::FrameKind::Key,
                    _ => frame::FrameKind::Cut,
                };
                frame::encode(kind, payload, &mut again);
                assert_eq!(&again[..], &data[at..at + len], "re-encoding gives the same bytes");
                at += len;
            }
            Decoded::Corrupt => {
                let skip = frame::find_sync(&data[at..]);
                assert!(skip >= 1 && at + skip <= data.len(), "resynchronising moves forward");
                at += skip;
            }
            Decoded::Incomplete => break,
        }
    }
});
