//! `pm-agent`: enroll this host with a patch-manager server, then check in periodically.

use std::path::PathBuf;
use std::process::ExitCode;

use agent::checkin::{self, Collector};
use agent::config::{AgentConfig, LocalSettings};
use agent::enroll::{self, CaPin, EnrollOptions};
use agent::state::{StateDir, DEFAULT_STATE_DIR};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// Patch-manager agent: reports this host's facts, packages and pending updates.
#[derive(Debug, Parser)]
#[command(name = "pm-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this host: create a key, get a client certificate with a one-time token.
    Enroll(EnrollArgs),
    /// Check in with the server periodically (foreground; run it under systemd).
    Run {
        #[command(flatten)]
        state: StateArg,
        /// Check in once and exit (non-zero on failure).
        #[arg(long)]
        once: bool,
    },
    /// Print the facts and inventory the agent would send, as JSON (debugging aid).
    #[command(hide = true)]
    Inventory {
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Debug, Args)]
struct StateArg {
    /// Directory holding the key, certificates and agent.toml.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR, env = "PM_AGENT_STATE_DIR")]
    state_dir: PathBuf,
}

#[derive(Debug, Args)]
#[group(id = "pin", required = true, multiple = false, args = ["ca", "ca_fingerprint"])]
struct EnrollArgs {
    /// Base URL of the server's web listener, e.g. https://pm.example:8443.
    #[arg(long, value_name = "URL")]
    server: String,
    /// One-time enrollment token from the server's Enroll page.
    #[arg(long, value_name = "TOKEN")]
    token: String,
    /// Trust only this CA certificate (PEM file) for the server.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Trust only the CA whose certificate has this SHA-256 fingerprint (sha256:HEX).
    #[arg(long, value_name = "sha256:HEX")]
    ca_fingerprint: Option<String>,
    #[command(flatten)]
    state: StateArg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // journald stores raw bytes: colour codes only for a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pm-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    match cli.command {
        Command::Enroll(args) => {
            let ca = match (args.ca, args.ca_fingerprint) {
                (Some(file), _) => CaPin::File(file),
                (None, Some(fp)) => CaPin::Fingerprint(fp),
                (None, None) => anyhow::bail!("one of --ca or --ca-fingerprint is required"),
            };
            let opts = EnrollOptions { server: args.server, token: args.token, ca, state_dir: args.state.state_dir };
            let enrolled = runtime.block_on(enroll::enroll(&opts)).context("enrollment failed")?;
            println!("enrolled as host {} (agent URL {})", enrolled.host_id, enrolled.agent_url);
            println!("state stored in {}", opts.state_dir.display());
            Ok(())
        }
        Command::Run { state, once } => {
            let state = StateDir::new(state.state_dir);
            runtime.block_on(checkin::run(state, once)).context("check-in failed")
        }
        Command::Inventory { state } => {
            let state = StateDir::new(state.state_dir);
            let settings = match AgentConfig::load(&state.config_path()) {
                Ok(config) => config.local(),
                Err(agent::AgentError::NotEnrolled(_)) => LocalSettings::default(),
                Err(e) => return Err(e.into()),
            };
            let snapshot = Collector::new(&settings).collect();
            let inventory = snapshot.inventory.context("inventory collection failed")?;
            let out = serde_json::json!({
                "facts": snapshot.facts,
                "inventory_digest": inventory.digest(),
                "installed_count": inventory.installed.len(),
                "pending_count": inventory.updates.len(),
                "security_count": inventory.updates.iter().filter(|u| u.security).count(),
                "inventory": inventory,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}
