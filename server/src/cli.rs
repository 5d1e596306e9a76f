//! Command line (clap derive; the doc comments are the help text).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Linux patch manager server: web UI, enrollment API and the agent mTLS listener.
#[derive(Debug, Parser)]
#[command(name = "patch-manager", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without it every setting takes its default.
    #[arg(long, global = true, env = "PM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (CA, keys, SQLite database); overrides `data_dir` from the file.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web and agent listeners until SIGINT/SIGTERM.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Host enrollment tokens.
    #[command(subcommand)]
    EnrollToken(EnrollTokenCommand),
    /// User accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// The internal certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// JWT signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Password hashing parameters.
    #[command(subcommand)]
    Passwords(PasswordsCommand),
}

#[derive(Debug, Subcommand)]
pub enum PasswordsCommand {
    /// Measure this machine and store the Argon2id time cost that makes one hash cost
    /// 250-500 ms (takes effect at the next start of every replica; existing hashes are
    /// upgraded at their next login).
    Calibrate,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Replace the signing key now (it signs after a short activation delay; the old key
    /// verifies for 24 h more). Use it after a suspected key compromise, with a server restart
    /// if the old key must stop verifying at once.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and print the effective settings (secrets redacted).
    Check {
        /// File to check; defaults to --config.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrollTokenCommand {
    /// Create a one-time enrollment token and print the agent command that uses it.
    Create {
        /// Lifetime in seconds (default and maximum come from the configuration).
        #[arg(long, value_name = "SECS")]
        ttl: Option<i64>,
        /// Free-text note shown in the token list.
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
        /// Host group (by name) the enrolled host joins.
        #[arg(long, value_name = "NAME")]
        group: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an administrator (the password is read from --password-file or stdin).
    CreateAdmin(CreateAdminArgs),
}

#[derive(Debug, Args)]
pub struct CreateAdminArgs {
    #[arg(long)]
    pub username: String,
    /// File whose first line is the password; without it the first line of stdin is used.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the SHA-256 fingerprint of the internal CA certificate (what agents pin).
    Fingerprint,
    /// Revoke every certificate of a host: its agent is refused from its next request on
    /// (every replica re-checks the database per request) until enrolled again.
    Revoke {
        /// The host id (shown on the host's page).
        #[arg(long, value_name = "HOST_ID")]
        host: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit hash chain; exits non-zero if any row was altered.
    Verify,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_subcommands() {
        let c = Cli::try_parse_from(["patch-manager", "--config", "x.toml", "enroll-token", "create", "--ttl", "60"])
            .unwrap();
        assert!(matches!(c.command, Command::EnrollToken(EnrollTokenCommand::Create { ttl: Some(60), .. })));
        let c = Cli::try_parse_from(["patch-manager", "config", "check", "a.toml"]).unwrap();
        assert!(matches!(c.command, Command::Config(ConfigCommand::Check { file: Some(_) })));
        let c = Cli::try_parse_from(["patch-manager", "user", "create-admin", "--username", "root"]).unwrap();
        assert!(matches!(c.command, Command::User(UserCommand::CreateAdmin(_))));
    }
}
