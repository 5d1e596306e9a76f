//! A job's output: appended line by line to `<job_id>.log` in the journal dir while the job
//! runs (so a crash keeps what was printed), and read back for the report, capped at
//! [`MAX_OUTPUT_BYTES`] with its head and tail kept around a marker.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{AgentError, Result};
use crate::proto::jobs::MAX_OUTPUT_BYTES;

/// Append-only writer of one job's log. Write errors are remembered, not fatal: losing
/// output must not stop a package upgrade half-way.
pub struct JobLog {
    path: PathBuf,
    file: Option<File>,
}

impl JobLog {
    pub fn open(path: &Path) -> Result<JobLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| AgentError::io("cannot open job log", path, e))?;
        Ok(JobLog { path: path.to_path_buf(), file: Some(file) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (a newline is added).
    pub fn line(&mut self, text: &str) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.trim_end_matches('\n').as_bytes());
        bytes.push(b'\n');
        if let Err(e) = file.write_all(&bytes) {
            tracing::warn!(error = %e, path = %self.path.display(), "cannot write job log; further output is dropped");
            self.file = None;
        }
    }

    /// A header line separating the steps of a job.
    pub fn section(&mut self, title: &str) {
        self.line(&format!("==> {title}"));
    }

    /// Flushes to disk (at step boundaries; a crash of the agent alone loses nothing anyway).
    pub fn sync(&mut self) {
        if let Some(file) = self.file.as_mut() {
            let _ = file.sync_data();
        }
    }
}

/// The log's content for a report: whole when it fits, else head + marker + tail within
/// `MAX_OUTPUT_BYTES`. A missing log reads as empty.
pub fn read_capped(path: &Path) -> String {
    read_capped_to(path, MAX_OUTPUT_BYTES)
}

pub fn read_capped_to(path: &Path, max: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let Ok(len_usize) = usize::try_from(len) else {
        return String::new();
    };
    if len_usize <= max {
        let mut bytes = Vec::with_capacity(len_usize);
        let _ = file.read_to_end(&mut bytes);
        return cap(&bytes, max);
    }
    // Room for the marker; the rest is split between head and tail.
    let budget = max.saturating_sub(64);
    let head_len = budget / 2;
    let tail_len = budget - head_len;
    let mut head = vec![0u8; head_len];
    let mut tail = vec![0u8; tail_len];
    let ok = file.read_exact(&mut head).is_ok()
        && file.seek(SeekFrom::Start(len - tail_len as u64)).is_ok()
        && file.read_exact(&mut tail).is_ok();
    if !ok {
        return String::new();
    }
    join_capped(&head, &tail, len - (head_len + tail_len) as u64, max)
}

/// `bytes` as text within `max` bytes (head + marker + tail when longer).
pub fn cap(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        let text = String::from_utf8_lossy(bytes).into_owned();
        return truncate_at_boundary(text, max);
    }
    let budget = max.saturating_sub(64);
    let head_len = budget / 2;
    let tail_len = budget - head_len;
    let omitted = (bytes.len() - head_len - tail_len) as u64;
    join_capped(&bytes[..head_len], &bytes[bytes.len() - tail_len..], omitted, max)
}

fn join_capped(head: &[u8], tail: &[u8], omitted: u64, max: usize) -> String {
    let head = utf8_head(head);
    let tail = utf8_tail(tail);
    let text = format!("{head}\n[... {omitted} bytes omitted ...]\n{tail}");
    truncate_at_boundary(text, max)
}

/// Drops an incomplete UTF-8 sequence cut at the end.
fn utf8_head(bytes: &[u8]) -> String {
    let end = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Drops continuation bytes of a sequence cut at the start.
fn utf8_tail(bytes: &[u8]) -> String {
    let start = bytes.iter().take(3).take_while(|b| (**b & 0xC0) == 0x80).count();
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Invalid bytes became U+FFFD (3 bytes each): never exceed `max` because of them.
fn truncate_at_boundary(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_appends_lines_and_reads_back_whole_when_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut log = JobLog::open(&path).unwrap();
        log.section("apt-get");
        log.line("one");
        log.line("two\n");
        log.sync();
        drop(log);
        // Reopening appends (a job resumed after a restart keeps its earlier output).
        JobLog::open(&path).unwrap().line("three");
        assert_eq!(read_capped(&path), "==> apt-get\none\ntwo\nthree\n");
        assert_eq!(read_capped(&dir.path().join("missing.log")), "");
    }

    #[test]
    fn long_output_keeps_head_and_tail_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let mut text = String::from("FIRST LINE\n");
        for i in 0..50_000 {
            text.push_str(&format!("line {i} äöü\n"));
        }
        text.push_str("LAST LINE\n");
        std::fs::write(&path, &text).unwrap();
        let max = 10_000;
        let out = read_capped_to(&path, max);
        assert!(out.len() <= max, "{}", out.len());
        assert!(out.starts_with("FIRST LINE\n"));
        assert!(out.ends_with("LAST LINE\n"));
        assert!(out.contains(" bytes omitted ...]"));
        let omitted: u64 = out.split("[... ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(omitted > (text.len() - max) as u64 && omitted < text.len() as u64);
        // Same answer from memory.
        assert_eq!(cap(text.as_bytes(), max), out);
        // The real limit applies by default.
        assert!(read_capped(&path).len() <= MAX_OUTPUT_BYTES);
    }

    #[test]
    fn cuts_never_split_characters_or_exceed_max_on_binary_garbage() {
        let text = "ä".repeat(1000);
        let out = cap(text.as_bytes(), 201);
        assert!(out.len() <= 201);
        assert!(!out.contains('\u{FFFD}'), "{out}");
        let garbage = vec![0xFFu8; 100];
        assert!(cap(&garbage, 100).len() <= 100);
    }
}
