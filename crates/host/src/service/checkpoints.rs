//! The key that signs audit checkpoints (`crm_api::checkpoint`): read from a file kept
//! apart from the database (`--checkpoint-key`, created with a fresh key when missing,
//! readable by its owner only), or made for this process alone when none is named
//! (tests; checkpoints then verify only against this process's public key).

use std::io::Write;
use std::path::Path;

use crm_api::checkpoint::CheckpointKey;
use rand::RngCore;

fn fresh() -> CheckpointKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    CheckpointKey::from_seed(seed)
}

/// A key for this process only.
pub fn ephemeral() -> CheckpointKey {
    fresh()
}

/// The key in `path`, creating the file (mode 0600) with a fresh key if it is missing.
pub fn load_or_create(path: &Path) -> anyhow::Result<CheckpointKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => CheckpointKey::from_hex(&text)
            .map_err(|e| anyhow::anyhow!("checkpoint key {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = fresh();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(path)?;
            writeln!(f, "{}", key.to_hex())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), public_key = %key.public_hex(), "created a checkpoint signing key");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("checkpoint key {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("checkpoint.key");
        let made = load_or_create(&path).expect("created");
        let again = load_or_create(&path).expect("read");
        assert_eq!(made.public_hex(), again.public_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").expect("spoil");
        assert!(load_or_create(&path).is_err());
    }
}
