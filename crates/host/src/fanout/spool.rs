//! The per-tenant NDJSON spool (`activity-backup-{tenant}.ndjson`): where activities go
//! that the upstream API would not take within the retry budget. Appends are fsynced
//! before the relay moves past them; `crm-host replay` re-sends a spool and removes
//! exactly what was delivered.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crm_store::outbox::Outgoing;

pub const PREFIX: &str = "activity-backup-";
pub const SUFFIX: &str = ".ndjson";

/// The spool file of a tenant. Tenant ids are validated identifiers (no `/`), so the
/// name stays inside the spool folder.
pub fn path(dir: &Path, tenant: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{tenant}{SUFFIX}"))
}

/// Appends the batch, one activity record per line, and fsyncs.
pub fn append(dir: &Path, tenant: &str, batch: &[Outgoing]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
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

/// Spool files in `dir` and the tenant each belongs to.
pub fn files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(tenant) = name
            .strip_prefix(PREFIX)
            .and_then(|n| n.strip_suffix(SUFFIX))
        {
            out.push((tenant.to_owned(), p.clone()));
        }
    }
    out.sort();
    Ok(out)
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
    fn append_read_and_trim_what_was_delivered() {
        let dir = tempfile::tempdir().expect("dir");
        append(dir.path(), "t1", &[out(1), out(2)]).expect("append");
        append(dir.path(), "t1", &[out(3)]).expect("append");
        let f = path(dir.path(), "t1");
        assert_eq!(
            files(dir.path()).expect("files"),
            vec![("t1".to_owned(), f.clone())]
        );
        let lines = read(&f).expect("read");
        assert_eq!(lines.len(), 3);
        keep_only(&f, &lines[2..]).expect("trim");
        assert_eq!(read(&f).expect("read"), vec!["{\"seq\":3}".to_owned()]);
        keep_only(&f, &[]).expect("empty");
        assert!(!f.exists());
    }
}
