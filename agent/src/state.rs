//! The state dir (default `/var/lib/pm-agent`): key, certificates, config, inventory ack.
//!
//! Every file is written atomically (temp file in the same dir, fsync, rename, fsync dir) so
//! a crash never leaves a half-written key or config behind. The temp file gets its final mode
//! before any byte is written, so the private key is never readable by others, not even briefly.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{AgentError, Result};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/pm-agent";

/// Mode of the private key.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of public files (certificates, config, ack).
pub const PUBLIC_MODE: u32 = 0o644;

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("key.pem")
    }
    pub fn cert_path(&self) -> PathBuf {
        self.root.join("cert.pem")
    }
    pub fn ca_path(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    /// The server's job-signing public key (raw 32 bytes, base64), pinned at enrollment.
    pub fn job_key_path(&self) -> PathBuf {
        self.root.join("job-signing.pub")
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("agent.toml")
    }
    /// Digest of the inventory the server last accepted (absent: none).
    pub fn ack_path(&self) -> PathBuf {
        self.root.join("inventory.ack")
    }

    /// Creates the dir (mode 0700) if needed.
    pub fn ensure(&self) -> Result<()> {
        if !self.root.is_dir() {
            fs::create_dir_all(&self.root).map_err(|e| AgentError::io("cannot create state dir", &self.root, e))?;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
                .map_err(|e| AgentError::io("cannot set state dir permissions", &self.root, e))?;
        }
        Ok(())
    }

    pub fn read(&self, path: &Path) -> Result<String> {
        fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AgentError::NotEnrolled(path.to_path_buf()),
            _ => AgentError::io("cannot read", path, e),
        })
    }
}

/// Replaces `path` with `bytes` atomically; the file has `mode` from its creation on.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    let result = write_new(&tmp, bytes, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| AgentError::io("cannot replace", path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable only once the directory entry is on disk.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_new(tmp: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| AgentError::io("cannot create", tmp, e))?;
    // `mode()` is filtered by the umask; set it exactly before the first write.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| AgentError::io("cannot set permissions on", tmp, e))?;
    file.write_all(bytes).map_err(|e| AgentError::io("cannot write", tmp, e))?;
    file.sync_all().map_err(|e| AgentError::io("cannot sync", tmp, e))
}

/// Removes `path`; a missing file is fine.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::io("cannot remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_0600_and_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        state.ensure().unwrap();
        let mode = fs::metadata(state.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let key = state.key_path();
        write_atomic(&key, b"first", SECRET_MODE).unwrap();
        write_atomic(&key, b"second", SECRET_MODE).unwrap();
        assert_eq!(fs::read_to_string(&key).unwrap(), "second");
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(state.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key.pem")]);
    }

    #[test]
    fn missing_file_reads_as_not_enrolled() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(matches!(state.read(&state.cert_path()), Err(AgentError::NotEnrolled(_))));
        remove_if_exists(&state.ack_path()).unwrap();
    }
}
