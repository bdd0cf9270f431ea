//! The quarantine: batches ClickHouse refused for good, kept in the data dir until the
//! operator has fixed the cause and replays them (`footfall-collector spool replay-quarantine`).
//!
//! A batch that can never be inserted (a column dropped, a constraint the rows break) would
//! otherwise be retried forever with every later batch waiting behind it; dropping it would
//! break the promise that an answered hit is stored. So it moves here, one file per batch in
//! the spool's own frame format (keys, events, then a cut with the batch's deduplication token,
//! so a replay after a partial success stores nothing twice), and the spool moves on. A batch
//! is written here as it is read from the spool, a row at a time: held whole and then encoded,
//! a 50,000-row batch (about 24 MB, at the 488 bytes a row the spool took for loadgen's
//! traffic) would cost twice that, far past the collector's memory bound, just when something
//! is already wrong. A file cut short by a failed write is removed. A replay reads it the same
//! way, twice: once whole to check every frame and learn its keys, token and row count, then
//! its rows as the insert sends them.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use super::batch::Rows;
use super::erasures::Erasures;
use super::frame::{self, FrameKind};
use super::insert::insert_filtered;
use super::scan::{Item, Scanner};
use super::spool::SpooledRows;
use footfall_store::ip_key::KeyRow;

const EXTENSION: &str = "batch";
/// The quarantine's folder in the data dir.
pub const QUARANTINE_DIR: &str = "quarantine";

pub struct Quarantine {
    dir: PathBuf,
}

/// What replaying one quarantined batch did.
pub struct Replayed {
    pub file: PathBuf,
    /// The rows stored, or why not (the file stays).
    pub result: Result<u64, String>,
}

impl Quarantine {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The quarantined batches' files, oldest first.
    pub fn files(&self) -> io::Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == EXTENSION))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Writes the batch of `token` (its `rows`, and the `keys` they need) to a file of its own,
    /// durably. Returns the file and how many rows it holds.
    pub fn put(
        &self,
        keys: &[KeyRow],
        token: Uuid,
        rows: &mut impl Rows,
    ) -> io::Result<(PathBuf, u64)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        // Named by time, so files list oldest first, and by token, so a batch has one file.
        let name = format!("{:020}-{token}.{EXTENSION}", crate::routes::now_ms());
        let path = self.dir.join(name);
        let mut count = 0;
        super::spool::replace_durably_with(&path, |file| {
            let mut out = io::BufWriter::with_capacity(256 << 10, file);
            let mut frame = Vec::new();
            let mut write_frame = |kind, payload: &[u8]| {
                frame.clear();
                frame::encode(kind, payload, &mut frame);
                io::Write::write_all(&mut out, &frame)
            };
            for key in keys {
                write_frame(
                    FrameKind::Key,
                    &postcard::to_allocvec(key).map_err(io::Error::other)?,
                )?;
            }
            while let Some(row) = rows.next_row()? {
                write_frame(FrameKind::Row, row)?;
                count += 1;
            }
            write_frame(FrameKind::Cut, token.as_bytes())?;
            io::Write::flush(&mut out)
        })?;
        Ok((path, count))
    }

    /// Inserts every quarantined batch with its own token, without the rows an erasure covers
    /// (as the inserter does), deleting the file of each one stored. Each insert is given
    /// [`REPLAY_TIMEOUT`].
    pub async fn replay(&self, client: &clickhouse::Client) -> io::Result<Vec<Replayed>> {
        let mut done = Vec::new();
        let mut erasures = Erasures::default();
        for file in self.files()? {
            let result = match read(&file) {
                Ok(batch) => {
                    let insert = replay_one(client, &mut erasures, &batch);
                    match tokio::time::timeout(REPLAY_TIMEOUT, insert).await {
                        Ok(Ok(stored)) => fs::remove_file(&file)
                            .map(|()| stored)
                            .map_err(|e| format!("stored, but the file stays: {e}")),
                        Ok(Err(error)) => Err(error.to_string()),
                        Err(_) => Err(format!(
                            "ClickHouse did not finish the insert within {} s",
                            REPLAY_TIMEOUT.as_secs()
                        )),
                    }
                }
                Err(error) => Err(error.to_string()),
            };
            done.push(Replayed { file, result });
        }
        Ok(done)
    }
}

/// Longest the replay of one quarantined batch may take.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(300);

/// A quarantined batch as its file's first reading found it: what an insert needs before its
/// rows go, which [`Quarantined::rows`] reads from the file again.
pub struct Quarantined {
    pub keys: Vec<KeyRow>,
    pub token: Uuid,
    pub rows: u64,
    path: PathBuf,
    /// Where its cut starts.
    end: u64,
}

impl Quarantined {
    pub fn rows(&self) -> io::Result<SpooledRows> {
        SpooledRows::open(&self.path, 0, self.end, self.rows)
    }
}

/// Inserts `batch` without the rows an erasure covers; returns the rows stored.
async fn replay_one(
    client: &clickhouse::Client,
    erasures: &mut Erasures,
    batch: &Quarantined,
) -> clickhouse::error::Result<u64> {
    let source = std::iter::once(batch.rows());
    let dropped = insert_filtered(client, erasures, &batch.keys, batch.token, source).await?;
    if dropped > 0 {
        tracing::info!(
            rows = dropped,
            "quarantined events of erased subjects dropped"
        );
    }
    Ok(batch.rows - dropped)
}

/// Reads the quarantine file at `path` through, checking every frame, without keeping its rows.
/// Any damage fails it whole: an operator replaying by hand should hear of it rather than have
/// part of a batch stored.
pub fn read(path: &Path) -> io::Result<Quarantined> {
    let damaged = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let mut scanner = Scanner::new(File::open(path)?, 0)?;
    let (mut keys, mut rows) = (Vec::new(), 0);
    loop {
        match scanner.next_item()? {
            Item::Frame {
                kind: FrameKind::Row,
                ..
            } => rows += 1,
            Item::Frame {
                kind: FrameKind::Key,
                ..
            } => keys.push(
                postcard::from_bytes(scanner.payload()).map_err(|e| damaged(&e.to_string()))?,
            ),
            Item::Frame {
                kind: FrameKind::Cut,
                offset,
                ..
            } => {
                let token =
                    Uuid::from_slice(scanner.payload()).map_err(|_| damaged("bad token"))?;
                return Ok(Quarantined {
                    keys,
                    token,
                    rows,
                    path: path.to_path_buf(),
                    end: offset,
                });
            }
            Item::Skipped { offset, len } => {
                return Err(damaged(&format!("{len} damaged bytes at offset {offset}")));
            }
            Item::End { .. } => return Err(damaged("no end of batch")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::batch::Batch;
    use footfall_store::event::{Event, Kind};

    #[test]
    fn a_quarantined_batch_reads_back_whole_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let quarantine = Quarantine::new(dir.path().join("quarantine"));
        assert!(quarantine.files().unwrap().is_empty());
        let token = Uuid::new_v4();
        let events: Vec<_> = (0..3).map(|ts| Event::new(Kind::Pageview, ts)).collect();
        let put = Batch::of(token, &events);
        let key = KeyRow {
            key_id: 4,
            created: 5,
            sealed_key: vec![6],
        };
        let (path, rows) = quarantine.put(&[key], token, &mut put.reader()).unwrap();
        assert_eq!(rows, 3);
        assert_eq!(quarantine.files().unwrap(), std::slice::from_ref(&path));
        let batch = read(&path).unwrap();
        assert_eq!((batch.keys.len(), batch.token, batch.rows), (1, token, 3));
        let back = Batch::read(token, &mut batch.rows().unwrap()).unwrap();
        assert_eq!((back.rows, back.ends), (put.rows, put.ends), "row for row");
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);

        let mut bytes = fs::read(&path).unwrap();
        bytes[40] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(read(&path).is_err());
    }

    /// Rows that fail after the first, as a batch damaged between two reads does.
    struct FailingAfterOne(bool);

    impl Rows for FailingAfterOne {
        fn next_row(&mut self) -> io::Result<Option<&[u8]>> {
            if std::mem::replace(&mut self.0, true) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "read back different",
                ));
            }
            Ok(Some(b"row"))
        }
    }

    #[test]
    fn a_batch_that_fails_part_way_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let quarantine = Quarantine::new(dir.path().join("quarantine"));
        let error = quarantine
            .put(&[], Uuid::new_v4(), &mut FailingAfterOne(false))
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(quarantine.files().unwrap().is_empty());
        let left: Vec<_> = fs::read_dir(quarantine.dir()).unwrap().collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
    }
}
