//! Host facts sent on every check-in. Collection is best effort: a missing file gives an
//! empty field (and a warning), never a failed check-in.

pub mod os_release;

use std::path::{Path, PathBuf};

use crate::config::{
    LocalSettings, DEFAULT_BOOT_ID_PATH, DEFAULT_OS_RELEASE_PATH, DEFAULT_REBOOT_REQUIRED_PATH,
    FALLBACK_OS_RELEASE_PATH,
};
use crate::proto::HostFacts;
use os_release::OsRelease;

/// Where facts come from; tests point these at fixtures.
#[derive(Debug, Clone)]
pub struct FactSources {
    /// `None`: `/etc/os-release`, falling back to `/usr/lib/os-release` as os-release(5) says.
    pub os_release: Option<PathBuf>,
    pub reboot_required: PathBuf,
    pub proc_root: PathBuf,
    /// Normally `<proc_root>/sys/kernel/random/boot_id`; tests fake a reboot by rewriting it.
    pub boot_id: PathBuf,
}

impl Default for FactSources {
    fn default() -> Self {
        FactSources {
            os_release: None,
            reboot_required: PathBuf::from(DEFAULT_REBOOT_REQUIRED_PATH),
            proc_root: PathBuf::from("/proc"),
            boot_id: PathBuf::from(DEFAULT_BOOT_ID_PATH),
        }
    }
}

impl FactSources {
    pub fn from_settings(settings: &LocalSettings) -> FactSources {
        let mut sources = FactSources { os_release: settings.os_release_path.clone(), ..FactSources::default() };
        if let Some(path) = &settings.reboot_required_path {
            sources.reboot_required = path.clone();
        }
        if let Some(path) = &settings.boot_id_path {
            sources.boot_id = path.clone();
        }
        sources
    }
}

pub fn collect(sources: &FactSources) -> HostFacts {
    let os = read_os_release(sources.os_release.as_deref());
    HostFacts {
        hostname: hostname(&sources.proc_root),
        os_id: os.id,
        os_version_id: os.version_id,
        os_pretty_name: os.pretty_name,
        kernel: read_trimmed(&sources.proc_root.join("sys/kernel/osrelease")).unwrap_or_default(),
        arch: arch(&sources.proc_root),
        uptime_seconds: read_trimmed(&sources.proc_root.join("uptime")).and_then(|t| parse_uptime(&t)).unwrap_or(0),
        reboot_required: sources.reboot_required.exists(),
        agent_version: crate::AGENT_VERSION.to_string(),
        boot_id: boot_id(&sources.boot_id),
    }
}

/// The current boot id (empty when unreadable).
pub fn boot_id(path: &Path) -> String {
    read_trimmed(path).unwrap_or_default()
}

/// The kernel's hostname (what `hostname` prints).
pub fn hostname(proc_root: &Path) -> String {
    read_trimmed(&proc_root.join("sys/kernel/hostname"))
        .or_else(|| read_trimmed(Path::new("/etc/hostname")))
        .unwrap_or_default()
}

fn read_os_release(configured: Option<&Path>) -> OsRelease {
    let candidates: Vec<&Path> = match configured {
        Some(path) => vec![path],
        None => vec![Path::new(DEFAULT_OS_RELEASE_PATH), Path::new(FALLBACK_OS_RELEASE_PATH)],
    };
    for path in &candidates {
        if let Ok(text) = std::fs::read_to_string(path) {
            return OsRelease::parse(&text);
        }
    }
    tracing::warn!(paths = ?candidates, "no readable os-release file");
    OsRelease::default()
}

/// `uname -m`: the kernel's own answer when it offers one (Linux >= 6.1), else the build
/// target mapped to uname's spelling.
fn arch(proc_root: &Path) -> String {
    read_trimmed(&proc_root.join("sys/kernel/arch"))
        .unwrap_or_else(|| uname_machine(std::env::consts::ARCH).to_string())
}

fn uname_machine(rust_arch: &str) -> &str {
    match rust_arch {
        "x86" => "i686",
        "arm" => "armv7l",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc" => "ppc",
        "loongarch64" => "loongarch64",
        other => other,
    }
}

/// First field of /proc/uptime ("12345.67 8910.11") in whole seconds.
fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let secs: f64 = first.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_from_fixtures() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        std::fs::create_dir_all(proc_root.join("sys/kernel")).unwrap();
        std::fs::write(proc_root.join("sys/kernel/osrelease"), "6.1.0-18-amd64\n").unwrap();
        std::fs::write(proc_root.join("sys/kernel/hostname"), "web-01\n").unwrap();
        std::fs::write(proc_root.join("uptime"), "350735.47 234388.90\n").unwrap();
        std::fs::create_dir_all(proc_root.join("sys/kernel/random")).unwrap();
        std::fs::write(proc_root.join("sys/kernel/random/boot_id"), "0b1e2c3d-aaaa-bbbb-cccc-000000000001\n").unwrap();
        let os_release = dir.path().join("os-release");
        std::fs::write(&os_release, "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian 12\"\n").unwrap();
        let reboot = dir.path().join("reboot-required");

        let boot_id = proc_root.join("sys/kernel/random/boot_id");
        let mut sources =
            FactSources { os_release: Some(os_release), reboot_required: reboot.clone(), proc_root, boot_id };
        let facts = collect(&sources);
        assert_eq!(facts.hostname, "web-01");
        assert_eq!(facts.kernel, "6.1.0-18-amd64");
        assert_eq!(facts.uptime_seconds, 350735);
        assert_eq!((facts.os_id.as_str(), facts.os_version_id.as_str()), ("debian", "12"));
        assert!(!facts.reboot_required);
        assert!(!facts.arch.is_empty());
        assert_eq!(facts.agent_version, crate::AGENT_VERSION);
        assert_eq!(facts.boot_id, "0b1e2c3d-aaaa-bbbb-cccc-000000000001");

        std::fs::write(&reboot, "").unwrap();
        sources.os_release = Some(dir.path().join("missing"));
        let facts = collect(&sources);
        assert!(facts.reboot_required);
        assert_eq!(facts.os_pretty_name, "");

        // A configured boot id file (tests fake a reboot by rewriting it).
        let fake_boot = dir.path().join("boot_id");
        std::fs::write(&fake_boot, "new-boot\n").unwrap();
        let settings = LocalSettings { boot_id_path: Some(fake_boot), ..LocalSettings::default() };
        assert_eq!(collect(&FactSources::from_settings(&settings)).boot_id, "new-boot");
    }

    #[test]
    fn uptime_and_arch_parsing() {
        assert_eq!(parse_uptime("12.99 1.0"), Some(12));
        assert_eq!(parse_uptime("garbage"), None);
        assert_eq!(parse_uptime("-1 0"), None);
        assert_eq!(uname_machine("x86_64"), "x86_64");
        assert_eq!(uname_machine("aarch64"), "aarch64");
        assert_eq!(uname_machine("x86"), "i686");
    }
}
