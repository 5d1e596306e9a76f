//! The server's own files are private to its user: the data dir is created 0700, the SQLite
//! database (password hashes, TOTP secrets, sessions) and its WAL/SHM files are 0600.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as the
/// administrator made it.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The file behind a `sqlite:` URL (`None` for PostgreSQL and in-memory databases).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Creates the database file 0600 before SQLite does (SQLite gives its WAL and SHM files the
/// database file's mode), or narrows an existing one (and its WAL/SHM) to 0600.
pub fn restrict_sqlite(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let mut names = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(PathBuf::from(name));
    }
    for file in names {
        let Ok(meta) = fs::metadata(&file) else { continue };
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
            tracing::warn!(file = %file.display(), "database file was readable by other users; now 0600");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite:///var/lib/pm/db.sqlite?mode=rwc"), Some(PathBuf::from("/var/lib/pm/db.sqlite")));
        assert_eq!(sqlite_path("sqlite://./data/patch-manager.db"), Some(PathBuf::from("./data/patch-manager.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://postgres@127.0.0.1/pm"), None);
    }

    #[test]
    fn new_dir_and_database_are_private_and_existing_ones_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("a/data");
        create_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        let db = data.join("patch-manager.db");
        restrict_sqlite(&db).unwrap();
        assert_eq!(mode(&db), 0o600);

        let old = tmp.path().join("old.db");
        let wal = tmp.path().join("old.db-wal");
        for f in [&old, &wal] {
            fs::write(f, b"x").unwrap();
            fs::set_permissions(f, fs::Permissions::from_mode(0o644)).unwrap();
        }
        restrict_sqlite(&old).unwrap();
        assert_eq!((mode(&old), mode(&wal)), (0o600, 0o600));
        assert_eq!(fs::read(&old).unwrap(), b"x", "contents untouched");
    }
}
