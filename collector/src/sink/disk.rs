//! The spool's segment files, through a layer that can be told to fail.
//!
//! Every write, truncation and sync of a segment goes through [`SegmentFile`], which asks the
//! collector's [`DiskFaults`] first. In production nothing is ever injected (one relaxed atomic
//! load per write call, not per event); tests inject `ENOSPC`, `EIO` and short writes to prove
//! the spool never leaves a partial frame that later frames follow, on any machine (mounting a
//! small tmpfs needs privileges a CI runner may lack), and stall writes to show what a disk that
//! stops answering costs in memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A fault to inject into every segment write and sync until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Writes fail with `ENOSPC` before writing anything.
    NoSpace = 1,
    /// Writes and syncs fail with `EIO`.
    Io = 2,
    /// Writes store half their bytes, then fail with `ENOSPC`: the case that tears a frame.
    ShortWrite = 3,
    /// Writes, truncations and syncs wait until the fault is cleared, then go on: a disk that
    /// stalls.
    Stall = 4,
}

/// The faults injected into a collector's spool; none unless a test sets one.
#[derive(Debug, Default)]
pub struct DiskFaults {
    fault: AtomicU8,
    /// What a stalled write waits on; only used while [`Fault::Stall`] is set.
    lock: Mutex<()>,
    cleared: Condvar,
}

impl DiskFaults {
    pub fn set(&self, fault: Option<Fault>) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.fault
            .store(fault.map_or(0, |f| f as u8), Ordering::Relaxed);
        self.cleared.notify_all();
    }

    /// The fault in force, once any stall is over.
    fn current(&self) -> Option<Fault> {
        let fault = self.read();
        if fault != Some(Fault::Stall) {
            return fault;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.read() == Some(Fault::Stall) {
            guard = self.cleared.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        self.read()
    }

    fn read(&self) -> Option<Fault> {
        match self.fault.load(Ordering::Relaxed) {
            1 => Some(Fault::NoSpace),
            2 => Some(Fault::Io),
            3 => Some(Fault::ShortWrite),
            4 => Some(Fault::Stall),
            _ => None,
        }
    }
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn io_error() -> io::Error {
    io::Error::from_raw_os_error(5)
}

/// A segment opened for appending (mode 0600: hits are personal data).
pub struct SegmentFile {
    file: File,
    faults: Arc<DiskFaults>,
}

impl SegmentFile {
    pub fn open(path: &Path, faults: Arc<DiskFaults>) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self { file, faults })
    }

    pub fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.faults.current() {
            Some(Fault::NoSpace) => Err(no_space()),
            Some(Fault::Io) => Err(io_error()),
            Some(Fault::ShortWrite) => {
                self.file.write_all(&bytes[..bytes.len() / 2])?;
                Err(no_space())
            }
            Some(Fault::Stall) | None => self.file.write_all(bytes),
        }
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        match self.faults.current() {
            Some(Fault::Io) => Err(io_error()),
            _ => self.file.set_len(len),
        }
    }

    pub fn sync_data(&self) -> io::Result<()> {
        match self.faults.current() {
            Some(Fault::Io) => Err(io_error()),
            _ => self.file.sync_data(),
        }
    }
}
