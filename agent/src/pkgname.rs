//! Package-name rules, checked by the server when a job is created and again by the agent
//! before anything runs. A name that passes is a plain package name for that manager: never an
//! option (`-x`), a path (`/`, `./x.deb`), a pattern (`*`, `?`, `[`), a version or
//! relation (`=`, `<`, `>`), an apt action suffix (trailing `-`), or anything a shell would
//! interpret, or a package file (`*.rpm`: dnf and zypper install a local file for an argument
//! ending in `.rpm`, even without a `/`). Commands are run without a shell anyway; this keeps
//! every argument a name.
//!
//! - apt (Debian policy 5.6.1): `[a-z0-9][a-z0-9+.-]+`, optionally `:ARCH` (`[a-z0-9-]+`).
//! - dnf, zypper (RPM): `[A-Za-z0-9_][A-Za-z0-9._+-]*`.
//!
//! Pure functions, no dependencies: shared by the server (without the `client` feature) and
//! the agent.

use crate::proto::PackageManager;

/// Longest name accepted.
pub const MAX_LEN: usize = 128;

/// Why a name was refused (the message names the rule, never echoes a huge input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    /// Starts with `-`: would be read as an option.
    Option,
    /// Contains `/`: a path, not a name.
    Path,
    /// Contains a glob/pattern character (`*`, `?`, `[`, `]`, `{`, `}`, `^`, `~`).
    Pattern,
    /// Contains a version or relation operator (`=`, `<`, `>`).
    Version,
    /// Ends with `-`: apt would remove the package.
    TrailingDash,
    /// Contains whitespace, a control character or a shell metacharacter.
    Unsafe,
    /// Any other character the manager does not allow in names, or a bad first character.
    Invalid,
    /// Ends with `.rpm`, `.deb`, `.udeb` or `.ddeb`: dnf and zypper read such an argument as a
    /// local package file.
    PackageFile,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameError::Empty => "package name is empty",
            NameError::TooLong => "package name is too long",
            NameError::Option => "package name must not start with '-' (options are not accepted)",
            NameError::Path => "package name must not contain '/' (paths are not accepted)",
            NameError::Pattern => "package name must not contain wildcards or patterns",
            NameError::Version => "package name must not contain a version or relation ('=', '<', '>')",
            NameError::TrailingDash => "package name must not end with '-'",
            NameError::Unsafe => "package name contains whitespace, control or shell characters",
            NameError::Invalid => "package name contains characters this package manager does not allow",
            NameError::PackageFile => "package name must not end in .rpm or .deb (package files are not accepted)",
        })
    }
}

impl std::error::Error for NameError {}

/// Checks `name` against the rules of `manager`.
pub fn validate(manager: PackageManager, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_LEN {
        return Err(NameError::TooLong);
    }
    // The specific refusals first, so the message says what was wrong.
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || "`$;&|()\\'\"!#%,".contains(c)) {
        return Err(NameError::Unsafe);
    }
    if name.starts_with('-') {
        return Err(NameError::Option);
    }
    if name.contains('/') {
        return Err(NameError::Path);
    }
    if name.chars().any(|c| "*?[]{}^~".contains(c)) {
        return Err(NameError::Pattern);
    }
    if name.chars().any(|c| "=<>".contains(c)) {
        return Err(NameError::Version);
    }
    if name.ends_with('-') {
        return Err(NameError::TrailingDash);
    }
    let lower = name.to_ascii_lowercase();
    if [".rpm", ".deb", ".udeb", ".ddeb"].iter().any(|ext| lower.ends_with(ext)) {
        return Err(NameError::PackageFile);
    }
    match manager {
        PackageManager::Apt => apt(name),
        PackageManager::Dnf | PackageManager::Zypper => rpm(name),
    }
}

/// Checks `name` for every manager in `managers` (the server validates a job against each
/// package manager among its target hosts).
pub fn validate_all(managers: &[PackageManager], name: &str) -> Result<(), NameError> {
    managers.iter().try_for_each(|m| validate(*m, name))
}

fn apt(name: &str) -> Result<(), NameError> {
    let (base, arch) = match name.split_once(':') {
        Some((b, a)) => (b, Some(a)),
        None => (name, None),
    };
    let first_ok = base.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = base.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    if base.len() < 2 || !first_ok || !rest_ok {
        return Err(NameError::Invalid);
    }
    if let Some(arch) = arch {
        let ok = !arch.is_empty()
            && arch.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !arch.starts_with('-');
        if !ok {
            return Err(NameError::Invalid);
        }
    }
    Ok(())
}

fn rpm(name: &str) -> Result<(), NameError> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if !first_ok || !rest_ok {
        return Err(NameError::Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use PackageManager::{Apt, Dnf, Zypper};

    #[test]
    fn real_names_pass() {
        for n in
            ["openssl", "libc6", "g++", "libstdc++6", "python3.11", "linux-image-6.1.0-13-amd64", "libc6:i386", "0ad"]
        {
            assert_eq!(validate(Apt, n), Ok(()), "{n}");
        }
        for n in [
            "NetworkManager",
            "perl-Digest-SHA",
            "kernel-core",
            "gcc-c++",
            "python3.11",
            "_underscore",
            "pm-test-pkg",
            "python3-rpm",
            "rpm",
        ] {
            assert_eq!(validate(Dnf, n), Ok(()), "{n}");
            assert_eq!(validate(Zypper, n), Ok(()), "{n}");
        }
    }

    #[test]
    fn hostile_names_are_refused_for_every_manager() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("-y", NameError::Option),
            ("--allow-downgrades", NameError::Option),
            ("-oAPT::Get::AllowUnauthenticated=1", NameError::Option),
            ("/tmp/evil.deb", NameError::Path),
            ("./evil.rpm", NameError::Path),
            ("open*", NameError::Pattern),
            ("lib?", NameError::Pattern),
            ("lib[ab]", NameError::Pattern),
            ("openssl=1.0", NameError::Version),
            ("openssl>1", NameError::Version),
            ("openssl-", NameError::TrailingDash),
            ("a; rm -rf /", NameError::Unsafe),
            ("$(reboot)", NameError::Unsafe),
            ("`id`", NameError::Unsafe),
            ("a|b", NameError::Unsafe),
            ("a&&b", NameError::Unsafe),
            ("a\nb", NameError::Unsafe),
            ("a b", NameError::Unsafe),
            ("x\0", NameError::Unsafe),
            ("evil.rpm", NameError::PackageFile),
            ("evil.RPM", NameError::PackageFile),
            ("evil.deb", NameError::PackageFile),
        ];
        for (name, want) in cases {
            for m in [Apt, Dnf, Zypper] {
                assert_eq!(validate(m, name), Err(*want), "{m:?} {name:?}");
            }
        }
        assert_eq!(validate(Apt, &"a".repeat(MAX_LEN + 1)), Err(NameError::TooLong));
    }

    #[test]
    fn manager_specific_rules() {
        assert_eq!(validate(Apt, "NetworkManager"), Err(NameError::Invalid));
        assert_eq!(validate(Apt, "a"), Err(NameError::Invalid));
        assert_eq!(validate(Apt, ".hidden"), Err(NameError::Invalid));
        assert_eq!(validate(Apt, "libc6:"), Err(NameError::Invalid));
        assert_eq!(validate(Dnf, "libc6:i386"), Err(NameError::Invalid));
        assert_eq!(validate(Dnf, ".x"), Err(NameError::Invalid));
        assert_eq!(validate_all(&[Apt, Dnf], "NetworkManager"), Err(NameError::Invalid));
        assert_eq!(validate_all(&[Apt, Dnf], "openssl"), Ok(()));
    }
}
