use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::sink::batch::{Batch, Rows};
use crate::sink::disk::Fault;
use footfall_store::event::Kind;

fn event(ts: i64) -> Event {
    let mut e = Event::new(Kind::Pageview, ts);
    e.event_id = Uuid::from_u128(ts as u128);
    e.site = "s".into();
    e.ip_sealed.0 = Some([7; footfall_seal::SEALED_IP_LEN]);
    e
}

fn key(id: u64) -> KeyRow {
    KeyRow {
        key_id: id,
        created: 1,
        sealed_key: vec![1, 2, 3],
    }
}

fn options() -> SpoolOptions {
    SpoolOptions {
        segment_bytes: 8 << 20,
        segment_age: Duration::from_secs(3600),
        faults: Arc::default(),
    }
}

/// The rows of `batch`, read back from the spool.
fn held(batch: &SpooledBatch) -> Batch {
    Batch::read(batch.token, &mut batch.rows().unwrap()).unwrap()
}

fn timestamps(batch: &SpooledBatch) -> Vec<i64> {
    held(batch)
        .rows()
        .map(|row| footfall_store::row_binary::timestamp(row).unwrap())
        .collect()
}

/// Every batch left in the spool, committed as read; the timestamps and the damage seen.
fn drain(reader: &mut SpoolReader, gauge: &SpoolGauge) -> (Vec<i64>, Vec<Damage>) {
    let (mut ts, mut damage) = (Vec::new(), Vec::new());
    while let Some(batch) = reader.next_batch().unwrap() {
        ts.extend(timestamps(&batch));
        damage.extend(batch.damage.iter().copied());
        let rows = batch.len();
        reader.commit(batch.end, rows, gauge).unwrap();
    }
    (ts, damage)
}

fn newest_segment(dir: &Path) -> PathBuf {
    segment_path(dir, *list_segments(dir).unwrap().last().unwrap())
}

/// Writes `batches` batches of `per_batch` events (timestamps counting up from 0) and closes.
fn write_batches(dir: &Path, batches: usize, per_batch: usize) {
    let gauge = SpoolGauge::default();
    let (mut writer, _, _) = open(dir, options(), &gauge).unwrap();
    for b in 0..batches {
        for i in 0..per_batch {
            writer.append_event(&event((b * per_batch + i) as i64), &gauge);
        }
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
    }
    writer.sync(&gauge).unwrap();
}

/// Offsets of every frame in `path`.
fn frame_offsets(path: &Path) -> Vec<u64> {
    let mut scanner = Scanner::new(File::open(path).unwrap(), 0).unwrap();
    let mut offsets = Vec::new();
    while let Item::Frame { offset, .. } = scanner.next_item().unwrap() {
        offsets.push(offset);
    }
    offsets
}

#[test]
fn batches_read_back_in_order_with_their_keys_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let (mut writer, mut reader, recovery) = open(dir.path(), options(), &gauge).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert!(reader.next_batch().unwrap().is_none(), "empty spool");
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    writer.append_event(&event(1), &gauge);
    writer.append_event(&event(2), &gauge);
    writer.append_key(&key(9), &gauge).unwrap();
    writer.cut(first, &gauge).unwrap();
    writer.append_event(&event(3), &gauge);
    assert!(gauge.pending_bytes() > 0);
    assert_eq!(gauge.backlog_rows(), 3);

    let batch = reader.next_batch().unwrap().unwrap();
    assert_eq!(timestamps(&batch), [1, 2]);
    assert_eq!(batch.token, first);
    assert_eq!(batch.keys.iter().map(|k| k.key_id).collect::<Vec<_>>(), [9]);
    assert_eq!(
        held(&batch).rows,
        Batch::of(first, &[event(1), event(2)]).rows,
        "the spool holds each event as its row, byte for byte"
    );
    reader.commit(batch.end, 2, &gauge).unwrap();
    assert!(
        reader.next_batch().unwrap().is_none(),
        "the second batch has no cut yet"
    );
    writer.cut(second, &gauge).unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    assert_eq!((timestamps(&batch), batch.token), (vec![3], second));
    reader.commit(batch.end, 1, &gauge).unwrap();
    assert_eq!((gauge.pending_bytes(), gauge.backlog_rows()), (0, 0));
}

#[test]
fn a_batch_is_sent_as_it_was_read_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 2, 5);
    let (_, mut reader, _) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    assert_eq!((batch.len(), batch.oldest_ms), (5, Some(0)));
    assert_eq!(
        timestamps(&batch),
        [0, 1, 2, 3, 4],
        "read twice, the same rows"
    );
    assert_eq!(
        timestamps(&batch),
        [0, 1, 2, 3, 4],
        "a retry reads them again"
    );

    // A row damaged after the batch was first read: the insert fails (and is retried) rather
    // than send four rows for five.
    let path = newest_segment(dir.path());
    let third_row = frame_offsets(&path)[2];
    let mut bytes = fs::read(&path).unwrap();
    bytes[third_row as usize + 30] ^= 1;
    fs::write(&path, bytes).unwrap();
    let mut rows = batch.rows().unwrap();
    let error = loop {
        match rows.next_row() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a short batch read as whole"),
            Err(error) => break error,
        }
    };
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let second = reader.next_batch().unwrap().unwrap();
    assert_eq!(
        timestamps(&second),
        [5, 6, 7, 8, 9],
        "the next batch is not touched"
    );
}

#[test]
fn an_uncommitted_batch_is_replayed_after_a_restart_with_the_same_token() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let (mut writer, reader, _) = open(dir.path(), options(), &gauge).unwrap();
    let token = Uuid::new_v4();
    writer.append_event(&event(1), &gauge);
    writer.cut(token, &gauge).unwrap();
    writer.sync(&gauge).unwrap();
    drop((writer, reader));
    let (_, mut reader, _) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(reader.count_recovered_rows().unwrap(), 1);
    let batch = reader.next_batch().unwrap().unwrap();
    assert_eq!((timestamps(&batch), batch.token), (vec![1], token));
}

#[test]
fn committed_batches_are_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let (mut writer, mut reader, _) = open(dir.path(), options(), &gauge).unwrap();
    writer.append_event(&event(1), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    reader.commit(batch.end, 1, &gauge).unwrap();
    writer.append_event(&event(2), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    drop((writer, reader));
    let (_, mut reader, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert_eq!(drain(&mut reader, &SpoolGauge::default()).0, [2]);
    drop(reader);
    for _ in 0..3 {
        let (_, mut reader, _) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
        assert!(reader.next_batch().unwrap().is_none());
    }
    assert_eq!(
        list_segments(dir.path()).unwrap().len(),
        1,
        "restarts do not pile up segments"
    );
}

#[test]
fn segments_rotate_by_size_and_age_and_go_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let small = SpoolOptions {
        segment_bytes: 64 << 10,
        ..options()
    };
    let (mut writer, mut reader, _) = open(dir.path(), small, &gauge).unwrap();
    let mut big = event(0);
    big.url = "x".repeat(2000).into();
    let per_batch = 10;
    let batches = 20;
    for b in 0..batches {
        for i in 0..per_batch {
            big.ts = (b * per_batch + i) as i64;
            writer.append_event(&big, &gauge);
        }
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
    }
    assert!(
        list_segments(dir.path()).unwrap().len() >= 3,
        "rotated by size"
    );
    let on_disk: u64 = list_segments(dir.path())
        .unwrap()
        .iter()
        .map(|&s| fs::metadata(segment_path(dir.path(), s)).unwrap().len())
        .sum();
    assert_eq!(gauge.disk_bytes(), on_disk);
    let (ts, damage) = drain(&mut reader, &gauge);
    assert_eq!(ts, (0..(batches * per_batch) as i64).collect::<Vec<_>>());
    assert!(damage.is_empty());
    assert_eq!(
        list_segments(dir.path()).unwrap().len(),
        1,
        "consumed segments are deleted"
    );
    assert_eq!(gauge.pending_bytes(), 0);
    assert!(gauge.disk_bytes() < 64 << 10);

    let aged = SpoolOptions {
        segment_age: Duration::ZERO,
        ..options()
    };
    drop((writer, reader));
    let gauge = SpoolGauge::default();
    let (mut writer, mut reader, _) = open(dir.path(), aged, &gauge).unwrap();
    writer.append_event(&event(1), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    writer.append_event(&event(2), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    assert_eq!(drain(&mut reader, &gauge).0, [1, 2]);
    assert_eq!(
        list_segments(dir.path()).unwrap().len(),
        1,
        "an old segment is closed and deleted once committed"
    );
    assert_eq!(gauge.disk_bytes(), 0);
}

#[test]
fn a_torn_tail_is_cut_off_and_dangling_events_get_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let (mut writer, reader, _) = open(dir.path(), options(), &gauge).unwrap();
    writer.append_event(&event(1), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    writer.append_event(&event(2), &gauge);
    writer.append_event(&event(3), &gauge);
    writer.sync(&gauge).unwrap();
    drop((writer, reader));
    // A crash in the middle of writing the next record.
    let segment = newest_segment(dir.path());
    let good = fs::metadata(&segment).unwrap().len();
    let mut torn = Vec::new();
    frame::encode(FrameKind::Row, &[5; 200], &mut torn);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&torn[..100]).unwrap();
    drop(file);

    let (_, mut reader, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(recovery.torn_bytes, 100);
    assert_eq!(recovery.torn_at.unwrap().offset, good);
    assert!(recovery.cut_dangling);
    let (ts, damage) = drain(&mut reader, &SpoolGauge::default());
    assert_eq!(
        ts,
        [1, 2, 3],
        "events without a cut form a batch of their own"
    );
    assert!(damage.is_empty(), "the torn record is never read as data");
}

/// The four kinds of damage the spool met: a bad length field, 4 KiB zeroed, 100 bytes cut
/// out, and a flipped bit in a payload. Each costs the records it touches, never the rest.
#[test]
fn damage_costs_only_the_records_it_touches_and_is_reported() {
    type Damager = fn(&mut Vec<u8>, usize);
    let damages: [(&str, Damager); 4] = [
        ("bad length", |b, at| b[at + 4] ^= 0x80),
        ("4 KiB zeroed", |b, at| b[at..at + 4096].fill(0)),
        ("100 bytes cut", |b, at| {
            b.drain(at + 50..at + 150);
        }),
        ("flipped bit", |b, at| b[at + 30] ^= 1),
    ];
    for (name, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        write_batches(dir.path(), 10, 100);
        let segment = newest_segment(dir.path());
        let offsets = frame_offsets(&segment);
        let mut bytes = fs::read(&segment).unwrap();
        let at = offsets[offsets.len() * 3 / 10] as usize;
        damage(&mut bytes, at);
        fs::write(&segment, bytes).unwrap();

        let gauge = SpoolGauge::default();
        let (_, mut reader, _) = open(dir.path(), options(), &gauge).unwrap();
        let (ts, found) = drain(&mut reader, &gauge);
        let lost = 1000 - ts.len();
        assert!(
            (1..=100).contains(&lost),
            "{name}: {lost} of 1000 lost, at most the damaged batch"
        );
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{name}: in order");
        assert_eq!(found.len(), 1, "{name}: one damaged stretch, reported once");
        assert_eq!(found[0].at.offset, at as u64, "{name}: where it is");
        assert!(
            *ts.last().unwrap() == 999,
            "{name}: the rest of the segment is read"
        );
    }
}

#[test]
fn damage_in_an_older_segment_costs_only_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let small = SpoolOptions {
        segment_bytes: 64 << 10,
        ..options()
    };
    let (mut writer, reader, _) = open(dir.path(), small, &gauge).unwrap();
    let mut n = 0;
    while list_segments(dir.path()).unwrap().len() < 3 {
        for _ in 0..50 {
            writer.append_event(&event(n), &gauge);
            n += 1;
        }
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
    }
    writer.sync(&gauge).unwrap();
    drop((writer, reader));
    let oldest = segment_path(dir.path(), list_segments(dir.path()).unwrap()[0]);
    let offsets = frame_offsets(&oldest);
    let mut bytes = fs::read(&oldest).unwrap();
    let at = offsets[offsets.len() / 2] as usize;
    bytes[at + 4..at + 8].fill(0xff);
    // And the segment's last cut is lost too: its last events come back as a batch of their own.
    let last_cut = *offsets.last().unwrap() as usize;
    bytes.truncate(last_cut);
    fs::write(&oldest, bytes).unwrap();

    let gauge = SpoolGauge::default();
    let (_, mut reader, _) = open(dir.path(), options(), &gauge).unwrap();
    let (ts, damage) = drain(&mut reader, &gauge);
    assert_eq!(ts.len() as i64, n - 1, "one record lost of {n}");
    assert_eq!(damage.len(), 1);
}

#[test]
fn a_failed_write_never_leaves_a_partial_frame_behind() {
    for fault in [Fault::ShortWrite, Fault::NoSpace, Fault::Io] {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let opts = options();
        let faults = opts.faults.clone();
        let (mut writer, mut reader, _) = open(dir.path(), opts, &gauge).unwrap();
        writer.append_event(&event(0), &gauge);
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        writer.sync(&gauge).unwrap();
        faults.set(Some(fault));
        writer.append_event(&event(1), &gauge);
        assert!(writer.cut(Uuid::new_v4(), &gauge).is_err(), "{fault:?}");
        assert!(writer.failing());
        writer.append_event(&event(2), &gauge);
        assert!(writer.cut(Uuid::new_v4(), &gauge).is_err());
        assert!(writer.sync(&gauge).is_err());
        faults.set(None);
        writer.append_event(&event(3), &gauge);
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        writer.sync(&gauge).unwrap();
        assert!(!writer.failing());
        let (ts, damage) = drain(&mut reader, &gauge);
        assert_eq!(ts, [0, 1, 2, 3], "{fault:?}: every event, once, in order");
        assert!(damage.is_empty(), "{fault:?}: no partial frame: {damage:?}");
    }
}

#[test]
fn a_failed_sync_writes_again_what_it_covered() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let opts = options();
    let faults = opts.faults.clone();
    let (mut writer, reader, _) = open(dir.path(), opts, &gauge).unwrap();
    writer.append_event(&event(1), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    faults.set(Some(Fault::Io));
    assert!(writer.sync(&gauge).is_err());
    faults.set(None);
    writer.sync(&gauge).unwrap();
    drop((writer, reader));
    let (_, mut reader, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert_eq!(drain(&mut reader, &SpoolGauge::default()).0, [1]);
}

#[test]
fn a_commit_mark_past_the_end_is_repaired_and_new_batches_flow() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 3, 10);
    let segment = newest_segment(dir.path());
    let len = fs::metadata(&segment).unwrap().len();
    // Power loss: the mark says everything was stored, but the segment lost its end.
    let seq = *list_segments(dir.path()).unwrap().last().unwrap();
    write_commit(
        dir.path(),
        Position {
            segment: seq,
            offset: len,
        },
        None,
    )
    .unwrap();
    let offsets = frame_offsets(&segment);
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(offsets[offsets.len() / 2])
        .unwrap();

    let gauge = SpoolGauge::default();
    let (mut writer, mut reader, recovery) = open(dir.path(), options(), &gauge).unwrap();
    assert!(
        matches!(recovery.mark, Some((_, MarkProblem::PastEnd { .. }))),
        "{recovery:?}"
    );
    writer.append_event(&event(100), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    assert_eq!(
        drain(&mut reader, &gauge).0,
        [100],
        "hits after the restart are read, not stalled behind the mark"
    );
    drop((writer, reader));
    let (_, _, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(recovery.mark, None, "the repair is durable");
}

#[test]
fn a_mark_in_a_missing_segment_or_damaged_goes_on_with_what_there_is() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 2, 5);
    let seq = *list_segments(dir.path()).unwrap().last().unwrap();
    write_commit(
        dir.path(),
        Position {
            segment: seq - 1,
            offset: 77,
        },
        None,
    )
    .unwrap();
    let (_, mut reader, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(
        recovery.mark.map(|m| m.1),
        Some(MarkProblem::MissingSegment)
    );
    assert_eq!(drain(&mut reader, &SpoolGauge::default()).0.len(), 10);
    drop(reader);

    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 2, 5);
    fs::write(dir.path().join(COMMIT_FILE), "garbage\n").unwrap();
    let (_, mut reader, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(recovery.mark.map(|m| m.1), Some(MarkProblem::Damaged));
    assert_eq!(
        drain(&mut reader, &SpoolGauge::default()).0.len(),
        10,
        "replayed"
    );
}

#[test]
fn a_mark_inside_a_frame_resynchronises() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 3, 5);
    let segment = newest_segment(dir.path());
    let seq = *list_segments(dir.path()).unwrap().last().unwrap();
    let offsets = frame_offsets(&segment);
    // Past the first batch (5 events and a cut), into the 8th frame.
    write_commit(
        dir.path(),
        Position {
            segment: seq,
            offset: offsets[7] + 3,
        },
        None,
    )
    .unwrap();
    let (_, mut reader, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(recovery.mark.map(|m| m.1), Some(MarkProblem::NotOnFrame));
    let (ts, damage) = drain(&mut reader, &SpoolGauge::default());
    assert_eq!(ts, [7, 8, 9, 10, 11, 12, 13, 14]);
    assert_eq!(damage.len(), 1);
}

#[test]
fn a_recorded_intent_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 3, 2);
    let (_, mut reader, _) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    reader.next_batch().unwrap().unwrap();
    let second = reader.next_batch().unwrap().unwrap();
    let intent = Intent {
        end: second.end,
        token: Uuid::new_v4(),
    };
    reader.record_intent(intent).unwrap();
    drop(reader);
    let (_, reader, recovery) = open(dir.path(), options(), &SpoolGauge::default()).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert_eq!(reader.intent(), Some(intent));
}

#[test]
fn the_spool_is_locked_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let (mut writer, mut reader, _) = open(dir.path(), options(), &gauge).unwrap();
    let second = open(dir.path(), options(), &SpoolGauge::default());
    let error = second.err().expect("a second open is refused");
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    assert!(error.to_string().contains("another collector"), "{error}");
    writer.append_event(&event(1), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    reader.commit(batch.end, 1, &gauge).unwrap();
    for entry in fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", entry.file_name());
    }
    drop((writer, reader));
    open(dir.path(), options(), &SpoolGauge::default()).expect("free again once closed");
}

#[test]
fn a_full_disk_closes_the_segment_so_stored_batches_free_their_space() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let opts = options();
    let faults = opts.faults.clone();
    let (mut writer, mut reader, _) = open(dir.path(), opts, &gauge).unwrap();
    writer.append_event(&event(0), &gauge);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    writer.sync(&gauge).unwrap();
    writer.append_event(&event(1), &gauge);
    writer.flush(&gauge).unwrap();
    faults.set(Some(Fault::NoSpace));
    writer.append_event(&event(2), &gauge);
    assert!(writer.cut(Uuid::new_v4(), &gauge).is_err());
    assert_eq!(list_segments(dir.path()).unwrap().len(), 2, "closed early");
    let (ts, damage) = drain(&mut reader, &gauge);
    assert_eq!(ts, [0, 1], "the written records, one without its cut");
    assert!(damage.is_empty());
    assert_eq!(
        list_segments(dir.path()).unwrap().len(),
        1,
        "the stored segment is deleted while the disk is still full"
    );
    faults.set(None);
    writer.cut(Uuid::new_v4(), &gauge).unwrap();
    assert_eq!(drain(&mut reader, &gauge).0, [2]);
}

/// The write buffer is regrown, copied and faulted in only when the load grows: not at every
/// segment, and not after a sync that took less than the ones before.
#[test]
fn a_steady_load_keeps_its_write_buffer_across_syncs_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let gauge = SpoolGauge::default();
    let mut options = options();
    options.segment_bytes = 4 << 20;
    let (mut writer, _, _) = open(dir.path(), options, &gauge).unwrap();
    let fill = |writer: &mut SpoolWriter, events: usize| {
        for i in 0..events {
            writer.append_event(&event(i as i64), &gauge);
        }
    };
    fill(&mut writer, 10_000);
    writer.sync(&gauge).unwrap();
    let room = writer.buf.capacity();
    assert!(
        room > WRITE_BUFFER_BYTES,
        "the test's syncs outgrow the first buffer"
    );
    let first = writer.segment;
    for round in 0..20 {
        // A short sync among full ones, as when a cut closes a segment between two intervals.
        let events = if round % 3 == 1 { 500 } else { 10_000 };
        fill(&mut writer, events);
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        writer.sync(&gauge).unwrap();
        assert_eq!(
            writer.buf.capacity(),
            room,
            "round {round}: the buffer kept its room"
        );
    }
    assert!(writer.segment > first + 2, "the rounds closed segments");
    // A burst's room is given back once the syncs after it take far less.
    fill(&mut writer, 100_000);
    writer.sync(&gauge).unwrap();
    for _ in 0..3 {
        fill(&mut writer, 500);
        writer.sync(&gauge).unwrap();
    }
    assert!(writer.buf.capacity() <= 2 * WRITE_BUFFER_BYTES);
}
