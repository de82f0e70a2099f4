//! The per-tenant NDJSON spool (`activity-backup-{tenant}.ndjson`): where activities go
//! that the upstream API would not take within the retry budget. Appends are fsynced
//! before the relay moves past them; `crm-host replay` re-sends a spool and removes
//! exactly what was delivered.
//!
//! `serve` appends while `replay` may be running beside it, so the two never touch one
//! file at once: an append holds the folder's lock (`.spool.lock`) for its write, and
//! replay takes the same lock only to rename the live file to `….ndjson.replaying`. From
//! then on the renamed file is replay's alone (the next append creates a new live file),
//! and a replay that stops part-way leaves it to be finished first by the next one. A
//! second lock (`.replay.lock`, held for the whole run) keeps two replays apart.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crm_store::outbox::Outgoing;

pub const PREFIX: &str = "activity-backup-";
pub const SUFFIX: &str = ".ndjson";
/// The suffix of a spool file taken over by replay.
const REPLAYING: &str = ".ndjson.replaying";
const APPEND_LOCK: &str = ".spool.lock";
const REPLAY_LOCK: &str = ".replay.lock";

/// The spool file of a tenant. Tenant ids are validated identifiers (no `/`), so the
/// name stays inside the spool folder.
pub fn path(dir: &Path, tenant: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{tenant}{SUFFIX}"))
}

fn replaying_path(dir: &Path, tenant: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{tenant}{REPLAYING}"))
}

/// The folder's append lock, held until the returned file is dropped.
fn append_lock(dir: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(APPEND_LOCK))?;
    f.lock()?;
    Ok(f)
}

/// Appends the batch, one activity record per line, and fsyncs.
pub fn append(dir: &Path, tenant: &str, batch: &[Outgoing]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let _lock = append_lock(dir)?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(dir, tenant))?;
    let mut buf = String::new();
    for o in batch {
        buf.push_str(&o.body);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes())?;
    f.sync_all()
}

/// Held by a running replay; `Err(WouldBlock)` when another replay holds it.
pub fn replay_lock(dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(REPLAY_LOCK))?;
    f.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "another replay is running on this spool",
        ),
        std::fs::TryLockError::Error(e) => e,
    })?;
    Ok(f)
}

/// The tenants that have something spooled, live or left by an earlier replay.
pub fn tenants(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(rest) = name.strip_prefix(PREFIX)
            && let Some(t) = rest
                .strip_suffix(SUFFIX)
                .or_else(|| rest.strip_suffix(REPLAYING))
        {
            out.push(t.to_owned());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The file replay should send next for `tenant`: what an earlier replay left, else the
/// live file renamed under the append lock; `None` when nothing is spooled.
pub fn take_for_replay(dir: &Path, tenant: &str) -> std::io::Result<Option<PathBuf>> {
    let taken = replaying_path(dir, tenant);
    if taken.exists() {
        return Ok(Some(taken));
    }
    let _lock = append_lock(dir)?;
    let live = path(dir, tenant);
    if !live.exists() {
        return Ok(None);
    }
    std::fs::rename(&live, &taken)?;
    Ok(Some(taken))
}

/// Every non-empty line of a spool file.
pub fn read(file: &Path) -> std::io::Result<Vec<String>> {
    BufReader::new(File::open(file)?)
        .lines()
        .filter(|l| !l.as_ref().is_ok_and(|l| l.trim().is_empty()))
        .collect()
}

/// Replaces the file's content with `remaining` (atomically: temp file, fsync,
/// rename); removes the file when nothing remains.
pub fn keep_only(file: &Path, remaining: &[String]) -> std::io::Result<()> {
    if remaining.is_empty() {
        return std::fs::remove_file(file);
    }
    let tmp = file.with_extension("ndjson.tmp");
    let mut f = File::create(&tmp)?;
    for line in remaining {
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(seq: u64) -> Outgoing {
        Outgoing {
            seq,
            id: format!("a{seq}"),
            received_at: 0,
            body: format!("{{\"seq\":{seq}}}"),
        }
    }

    #[test]
    fn append_take_read_and_trim_what_was_delivered() {
        let dir = tempfile::tempdir().expect("dir");
        append(dir.path(), "t1", &[out(1), out(2)]).expect("append");
        assert_eq!(tenants(dir.path()).expect("tenants"), vec!["t1".to_owned()]);
        let f = take_for_replay(dir.path(), "t1")
            .expect("take")
            .expect("spooled");
        append(dir.path(), "t1", &[out(3)]).expect("append after the take");
        assert_eq!(read(&f).expect("read").len(), 2, "the taken file is frozen");
        let lines = read(&f).expect("read");
        keep_only(&f, &lines[1..]).expect("trim");
        assert_eq!(
            take_for_replay(dir.path(), "t1").expect("take"),
            Some(f.clone()),
            "what a replay left is finished first"
        );
        assert_eq!(read(&f).expect("read"), vec!["{\"seq\":2}".to_owned()]);
        keep_only(&f, &[]).expect("empty");
        assert!(!f.exists());
        let live = take_for_replay(dir.path(), "t1")
            .expect("take")
            .expect("the later append");
        assert_eq!(read(&live).expect("read"), vec!["{\"seq\":3}".to_owned()]);
        keep_only(&live, &[]).expect("empty");
        assert_eq!(take_for_replay(dir.path(), "t1").expect("take"), None);
        assert!(tenants(dir.path()).expect("tenants").is_empty());
    }

    /// Issue 26.11: a replay beside a running `serve` lost the lines appended while it
    /// rewrote the file. Appenders race a taker here; every line lands exactly once in
    /// what the taker read or in what is left.
    #[test]
    fn appends_racing_a_replay_lose_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let (writers, per_writer) = (4u64, 400u64);
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let d = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for i in 0..per_writer {
                        append(&d, "t1", &[out(w * per_writer + i)]).expect("append");
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        while !handles.iter().all(std::thread::JoinHandle::is_finished) {
            if let Some(f) = take_for_replay(dir.path(), "t1").expect("take") {
                seen.extend(read(&f).expect("read"));
                keep_only(&f, &[]).expect("delivered");
            }
        }
        for h in handles {
            h.join().expect("writer");
        }
        while let Some(f) = take_for_replay(dir.path(), "t1").expect("take") {
            seen.extend(read(&f).expect("read"));
            keep_only(&f, &[]).expect("delivered");
        }
        let mut want: Vec<String> = (0..writers * per_writer).map(|s| out(s).body).collect();
        want.sort();
        seen.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn two_replays_exclude_each_other() {
        let dir = tempfile::tempdir().expect("dir");
        let first = replay_lock(dir.path()).expect("first");
        let second = replay_lock(dir.path()).expect_err("second");
        assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock);
        drop(first);
        replay_lock(dir.path()).expect("free again");
    }
}
