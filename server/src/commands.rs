//! What each CLI subcommand does. Errors are `anyhow` (this is an edge).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use app::backend::audit::{self, Actor};
use app::backend::ca::Ca;
use app::backend::db::now_unix;
use app::backend::{enrollment, sessions, users};

use crate::cli::{
    AuditCommand, CaCommand, Cli, Command, ConfigCommand, EnrollTokenCommand, KeysCommand, PasswordsCommand, UserCommand,
};
use crate::config::{Config, Overrides};

fn overrides(cli: &Cli) -> Overrides {
    Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: std::env::var("PM_DATABASE_URL").ok().filter(|s| !s.is_empty()),
    }
}

/// Commands that act on a server that has started before: run against a data dir without
/// its CA they would silently create a second, empty server state (a relative `data_dir` is
/// taken from the current directory). `serve`, `migrate` and `user create-admin` (the
/// shell's way to set up a new server) create it.
fn needs_existing_state(command: &Command) -> bool {
    matches!(
        command,
        Command::EnrollToken(_) | Command::Ca(_) | Command::Audit(_) | Command::Keys(_) | Command::Passwords(_)
    )
}

fn existing_state(config: &Config) -> anyhow::Result<()> {
    if config.data_dir.join("pki").join("ca.pem").is_file() {
        return Ok(());
    }
    let shown = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    Err(anyhow!(
        "no server state in {} (no pki/ca.pem): this command works on the data directory of a server that has \
         started once. A relative data_dir is taken from the current directory: run it where the server runs, \
         or pass the server's --config or --data-dir",
        shown.display()
    ))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ov = overrides(&cli);
    if let Command::Config(ConfigCommand::Check { file }) = &cli.command {
        let path = file.as_deref().or(cli.config.as_deref());
        let config = Config::load(path, &ov)?;
        println!("{config:#?}");
        println!("configuration OK");
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli.config.as_deref(), &ov)?;
    if needs_existing_state(&cli.command) {
        existing_state(&config)?;
    }
    match cli.command {
        Command::Config(_) => Ok(ExitCode::SUCCESS),
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let db = crate::open_db(&config).await?;
            db.migrate().await?;
            println!("database migrated");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Rotate) => {
            let db = crate::open_db(&config).await?;
            db.migrate().await?;
            let kid = app::backend::sessions::rotate_now(&db, &Actor::Cli, now_unix()).await?;
            println!(
                "new signing key {kid}: signs in {} s, the previous key verifies for 24 h more",
                app::backend::sessions::ACTIVATION_DELAY_SECS
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Passwords(PasswordsCommand::Calibrate) => {
            use app::backend::passwords;
            let db = crate::open_db(&config).await?;
            db.migrate().await?;
            let (t, ms) = passwords::calibrate(&passwords::Hasher::new(1, passwords::T_COST)).await?;
            passwords::store_t_cost(&db, &Actor::Cli, t, ms, now_unix()).await?;
            println!("argon2id m={} KiB t={t} p={}: {ms:.0} ms per hash on this machine (target 250-500 ms); stored, effective at the next start", passwords::M_COST_KIB, passwords::P_COST);
            if config.password_time_cost.is_some() {
                println!("note: password_time_cost in the configuration file overrides the stored value");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::EnrollToken(EnrollTokenCommand::Create { ttl, note, group }) => {
            let state = crate::init_state(&config).await?;
            let group_id = match &group {
                Some(name) => Some(
                    app::backend::groups::id_by_name(&state.db, name)
                        .await?
                        .ok_or_else(|| anyhow!("no host group named {name:?}"))?,
                ),
                None => None,
            };
            let t = enrollment::create_token(&state, &Actor::Cli, &note, ttl, group_id.as_deref(), now_unix()).await?;
            println!("token:          {}", t.token);
            println!("expires at:     {} UTC", utc(t.info.expires_at));
            println!("CA fingerprint: {}", t.ca_fingerprint);
            println!("run on the host:\n  {}", t.agent_command);
            Ok(ExitCode::SUCCESS)
        }
        Command::User(UserCommand::CreateAdmin(args)) => {
            let password = match &args.password_file {
                Some(p) => first_line(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
                None => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
                    first_line(line)
                }
            };
            if password.is_empty() {
                return Err(anyhow!("empty password"));
            }
            let state = crate::init_state(&config).await?;
            let user = users::create_admin(&state, &Actor::Cli, &args.username, &password, now_unix()).await?;
            println!("created admin {} ({})", user.username, user.id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ca(CaCommand::Fingerprint) => {
            let ca = Ca::load_or_create(&config.data_dir, now_unix())?;
            println!("{}", ca.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        Command::Ca(CaCommand::Revoke { host }) => {
            let db = crate::open_db(&config).await?;
            db.migrate().await?;
            let registry = app::backend::certs::CertRegistry::default();
            let scope = app::backend::access::Scope::All;
            let serials =
                app::backend::certs::revoke_host(&db, &registry, &Actor::Cli, &scope, &host, now_unix()).await?;
            for serial in serials {
                println!("revoked certificate {serial} of host {host}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify) => {
            let db = crate::open_db(&config).await?;
            db.migrate().await?;
            let v = audit::verify(&db).await?;
            match v.first_bad_seq {
                None => {
                    println!("audit chain OK ({} rows)", v.rows);
                    Ok(ExitCode::SUCCESS)
                }
                Some(seq) => {
                    println!("audit chain BROKEN at seq {seq} ({} rows checked)", v.rows);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn first_line(s: String) -> String {
    s.lines().next().unwrap_or("").to_string()
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let public_url = config.public_url.clone();
    let server = crate::run_with(config, crate::shutdown_signal()).await?;
    // The setup URL is a one-time secret for whoever runs the service: stdout, not the log.
    if let Some(token) = sessions::setup_token_issue(&server.state, now_unix()).await? {
        println!("No user exists yet. Create the first administrator within one hour at:");
        println!("  {public_url}/setup?token={token}");
    }
    server.join.await.context("server task")?;
    Ok(ExitCode::SUCCESS)
}

/// `2026-12-04 17:30:00` for unix seconds (the CLI speaks UTC).
fn utc(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}
