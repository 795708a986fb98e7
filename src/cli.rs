//! The `guestpass` command line.

use crate::app::{self, RunOptions};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::EmailAddress;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// A parsed command line: the command, and the configuration (flags and environment) it runs with.
pub struct Cli {
    pub config: Config,
    pub command: Command,
}

/// The command line's shape; the configuration flags are added to each command by [`command`].
#[derive(Parser)]
#[command(
    name = "guestpass",
    version,
    about = "Guest access server: invite external people as single-space guests.",
    after_help = "Each command's --help lists the configuration it reads; every flag can also be set through the environment variable it names."
)]
struct CommandLine {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server, the job workers and the scheduler (applies migrations first).
    Serve {
        /// Only the HTTP API (scale API and workers separately).
        #[arg(long, conflicts_with = "workers_only")]
        api_only: bool,
        /// Only the job workers and scheduler.
        #[arg(long)]
        workers_only: bool,
        /// Seed a small demo organization and print its admin token.
        #[arg(long)]
        demo: bool,
        /// Development mode: allows running without GUESTPASS_SECRET.
        #[arg(long)]
        dev: bool,
    },
    /// Apply the embedded database migrations.
    Migrate,
    /// Print the GraphQL schema (SDL); `schema.graphql` is its checked-in output.
    ExportSchema,
    /// Build a realistic benchmark dataset in a new organization and print, as JSON, what a load
    /// driver needs (organization slug, site id, admin tokens, a session token).
    Seed {
        #[arg(long, default_value_t = 10_000)]
        users: i64,
        #[arg(long, default_value_t = 2_000)]
        guests: i64,
        #[arg(long, default_value_t = 3)]
        sites: i64,
        #[arg(long, default_value_t = 200)]
        spaces: i64,
        #[arg(long, default_value_t = 50)]
        groups: i64,
        #[arg(long, default_value_t = 500)]
        invites: i64,
        #[arg(long, default_value_t = 20_000)]
        audit: i64,
        /// Admins besides the first (one load-driver client each).
        #[arg(long, default_value_t = 7)]
        admins: i64,
        /// Large mode: this many external users without access (e.g. 1000000)...
        #[arg(long, default_value_t = 0)]
        external: i64,
        /// ...of whom this many are due for re-verification.
        #[arg(long, default_value_t = 0)]
        due: i64,
    },
    /// Run the re-verification sweep once, now: queue a reminder for every external user whose
    /// verification ends within the lead time and who has not had one for this period (the running
    /// workers send them). Prints how many were queued.
    ReverifyNow,
    /// Recompute the maintained access state (who holds what on each site, the seat counters, what
    /// open invites hold) from the grants, print every difference, and with `--repair` write the
    /// recomputed state. Exits 1 when differences were found and not repaired.
    CheckAccess {
        /// Write the recomputed state where it differs.
        #[arg(long)]
        repair: bool,
    },
    /// Re-seal every stored secret (authenticator apps' TOTP secrets, webhook signing secrets)
    /// that is not sealed under the current GUESTPASS_SECRET, opening it with
    /// GUESTPASS_SECRET_PREVIOUS; prints how many.
    /// Idempotent. Run it once every replica runs with the new secret (and the old one as
    /// GUESTPASS_SECRET_PREVIOUS); then GUESTPASS_SECRET_PREVIOUS can go.
    RotateSecrets,
    /// Create (or find, by name) an organization, a site and its first admin, and print an API token
    /// for that admin alone on the last line.
    Bootstrap {
        #[arg(long)]
        org: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        user_limit: Option<i32>,
        #[arg(long = "verified-domain")]
        verified_domains: Vec<String>,
    },
}

/// The configuration each command reads, by field of [`Config`] (which is also the flag's clap id);
/// `serve` reads all of it. Every flag is accepted before or after the command name and read from its
/// environment variable, but a command's `--help` lists only the flags it reads, and giving one it
/// does not read on the command line is an error rather than silently ignored.
const READS: &[(&str, &[&str])] = &[
    (
        "migrate",
        &["database_url", "secret", "secret_previous", "log"],
    ),
    ("export-schema", &[]),
    (
        "seed",
        &["database_url", "secret", "secret_previous", "log"],
    ),
    (
        "reverify-now",
        &[
            "database_url",
            "secret",
            "secret_previous",
            "log",
            "public_url",
            "reverify_lead_minutes",
        ],
    ),
    (
        "check-access",
        &["database_url", "secret", "secret_previous", "log"],
    ),
    (
        "rotate-secrets",
        &["database_url", "secret", "secret_previous", "log"],
    ),
    (
        "bootstrap",
        &["database_url", "secret", "secret_previous", "log"],
    ),
];

/// The command line: each command takes every configuration flag (so a deployment can set the same
/// environment for all of them), and lists in its `--help` only those it reads (see [`READS`]).
pub fn command() -> clap::Command {
    use clap::Args;
    let config: Vec<clap::Arg> = Config::augment_args(clap::Command::new("config"))
        .get_arguments()
        .cloned()
        .collect();
    let mut cmd = CommandLine::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        let reads = READS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
        cmd = cmd.mut_subcommand(&name, |sc| {
            sc.args(config.iter().map(|a| {
                let read = reads.is_none_or(|r| r.contains(&a.get_id().as_str()));
                a.clone().hide(!read)
            }))
        });
    }
    cmd
}

/// Parses the process's arguments (exits with clap's message on a usage error), and refuses a
/// configuration flag given on the command line to a command that does not read it.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    let (name, sub) = matches.subcommand().expect("a command is required");
    if let Some((_, reads)) = READS.iter().find(|(n, _)| *n == name) {
        for arg in command()
            .find_subcommand(name)
            .into_iter()
            .flat_map(|c| c.get_arguments().cloned().collect::<Vec<_>>())
        {
            let id = arg.get_id().as_str();
            if arg.is_hide_set()
                && !reads.contains(&id)
                && sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            {
                command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "`guestpass {name}` does not read --{}",
                            id.replace('_', "-")
                        ),
                    )
                    .exit();
            }
        }
    }
    let config = Config::from_arg_matches(sub).unwrap_or_else(|e| e.exit());
    let command = CommandLine::from_arg_matches(&matches)
        .unwrap_or_else(|e| e.exit())
        .command;
    Cli { config, command }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs the command; errors come back as one sentence for the operator.
pub async fn run(cli: Cli) -> Result<(), String> {
    let Cli { config, command } = cli;
    // Every command that migrates also seals what the migrations left in plain text (with the
    // server secret, when it is configured).
    let keys = crate::secrets::SecretKeys::from_config(&config);
    match command {
        Command::ExportSchema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::Migrate => {
            init_logging(&config.log);
            let url = config.database_url.clone();
            let applied = tokio::task::spawn_blocking(move || {
                crate::db::migrate_and_seal(&url, keys.as_ref())
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            let pool = crate::jobs::queue_pool(&config.database_url, 2).await?;
            crate::jobs::setup_queue(&pool).await?;
            eprintln!("migrations applied: {applied}");
            Ok(())
        }
        Command::Bootstrap {
            org,
            site,
            admin_email,
            user_limit,
            verified_domains,
        } => {
            init_logging(&config.log);
            let email =
                EmailAddress::parse(&admin_email).map_err(|e| format!("--admin-email {e}"))?;
            let name = |v: &str, what: &str| {
                crate::domain::text::single_line(v, 200).map_err(|e| format!("--{what} {e}"))
            };
            let (org, site) = (name(&org, "org")?, name(&site, "site")?);
            if user_limit.is_some_and(|l| l < 1) {
                return Err("--user-limit must be at least 1".into());
            }
            let url = config.database_url.clone();
            let b = tokio::task::spawn_blocking(move || -> Result<_, String> {
                crate::db::migrate_and_seal(&url, keys.as_ref()).map_err(|e| e.to_string())?;
                let mut conn = crate::db::build_pool(&url, 1)
                    .get()
                    .map_err(|e| e.to_string())?;
                crate::store::org::bootstrap(
                    &mut conn,
                    crate::store::org::BootstrapInput {
                        org_name: org,
                        site_name: site,
                        admin_email: email,
                        user_limit,
                        verified_domains,
                    },
                    chrono::Utc::now(),
                )
                .map_err(|e| format!("bootstrap failed: {e:?}"))
            })
            .await
            .map_err(|e| e.to_string())??;
            let pool = crate::jobs::queue_pool(&config.database_url, 2).await?;
            crate::jobs::setup_queue(&pool).await?;
            println!(
                "organization: {} ({})",
                b.organization.name, b.organization.slug
            );
            println!("site: {} ({})", b.site.name, b.site.id);
            println!("admin: {} ({})", b.admin.email, b.admin.id);
            println!("{}", b.api_token);
            Ok(())
        }
        Command::Seed {
            users,
            guests,
            sites,
            spaces,
            groups,
            invites,
            audit,
            admins,
            external,
            due,
        } => {
            init_logging(&config.log);
            if guests > users || due > external {
                return Err("--guests must not exceed --users, nor --due --external".into());
            }
            let url = config.database_url.clone();
            let started = std::time::Instant::now();
            tokio::task::spawn_blocking(move || crate::db::migrate_and_seal(&url, keys.as_ref()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let pool = crate::jobs::queue_pool(&config.database_url, 2).await?;
            crate::jobs::setup_queue(&pool).await?;
            let url = config.database_url.clone();
            let seeded = tokio::task::spawn_blocking(move || -> Result<_, String> {
                let mut conn = crate::db::build_pool(&url, 1)
                    .get()
                    .map_err(|e| e.to_string())?;
                crate::store::changes::seed::seed(
                    &mut conn,
                    &crate::store::changes::seed::SeedInput {
                        users,
                        guests,
                        sites,
                        spaces,
                        groups,
                        pending_invites: invites,
                        audit_events: audit,
                        extra_admins: admins,
                        external,
                        external_due: due,
                    },
                    chrono::Utc::now(),
                )
                .map_err(|e| format!("seeding failed: {e:?}"))
            })
            .await
            .map_err(|e| e.to_string())??;
            eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
            println!(
                "{}",
                serde_json::to_string(&seeded).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::CheckAccess { repair } => {
            init_logging(&config.log);
            let url = config.database_url.clone();
            tokio::task::spawn_blocking(move || crate::db::migrate_and_seal(&url, keys.as_ref()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let url = config.database_url.clone();
            let found = tokio::task::spawn_blocking(move || -> Result<_, String> {
                let mut conn = crate::db::build_pool(&url, 1)
                    .get()
                    .map_err(|e| e.to_string())?;
                crate::store::changes::check::run(&mut conn, repair, chrono::Utc::now())
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
            for d in &found {
                println!("{d}");
            }
            let verb = if repair { "repaired" } else { "found" };
            println!("{} differences {verb}", found.len());
            if !found.is_empty() && !repair {
                return Err(format!(
                    "{} differences between the grants and the maintained access state",
                    found.len()
                ));
            }
            Ok(())
        }
        Command::RotateSecrets => {
            init_logging(&config.log);
            let keys = keys.ok_or(
                "rotate-secrets needs the new secret as GUESTPASS_SECRET (and the old one as GUESTPASS_SECRET_PREVIOUS)",
            )?;
            if keys.previous_id().is_none() {
                eprintln!(
                    "GUESTPASS_SECRET_PREVIOUS is not set: only secrets already sealed under GUESTPASS_SECRET (or in plain text) can be handled"
                );
            }
            let url = config.database_url.clone();
            let resealed = tokio::task::spawn_blocking(move || -> Result<usize, String> {
                crate::db::migrate_and_seal(&url, Some(&keys)).map_err(|e| e.to_string())?;
                let mut conn = crate::db::build_pool(&url, 1)
                    .get()
                    .map_err(|e| e.to_string())?;
                // Authenticator and webhook secrets in one transaction: all re-sealed, or none.
                diesel::Connection::transaction(&mut conn, |conn| {
                    Ok::<_, crate::error::AppError>(
                        crate::store::signin::reseal_totp(conn, &keys)?
                            + crate::store::webhooks::reseal_secrets(conn, &keys)?,
                    )
                })
                .map_err(|e| match e {
                    crate::error::AppError::Internal(detail) => {
                        format!("nothing was re-sealed: {detail}")
                    }
                    e => format!("nothing was re-sealed: {e:?}"),
                })
            })
            .await
            .map_err(|e| e.to_string())??;
            println!("{resealed} stored secrets re-sealed under the current key");
            Ok(())
        }
        Command::ReverifyNow => {
            init_logging(&config.log);
            let url = config.database_url.clone();
            tokio::task::spawn_blocking(move || crate::db::migrate_and_seal(&url, keys.as_ref()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let pool = crate::jobs::queue_pool(&config.database_url, 2).await?;
            crate::jobs::setup_queue(&pool).await?;
            let url = config.database_url.clone();
            let domain = crate::state::message_id_domain(&config.public_url);
            let lead = config.reverify_lead_minutes;
            let emailed = tokio::task::spawn_blocking(move || -> Result<i64, String> {
                let mut conn = crate::db::build_pool(&url, 1)
                    .get()
                    .map_err(|e| e.to_string())?;
                crate::store::external::sweep(
                    &mut conn,
                    crate::domain::status::SweepTrigger::Manual,
                    lead,
                    &domain,
                    chrono::Utc::now(),
                )
                .map_err(|e| format!("the sweep failed: {e:?}"))
            })
            .await
            .map_err(|e| e.to_string())??;
            println!("{emailed} re-verification emails queued");
            Ok(())
        }
        Command::Serve {
            api_only,
            workers_only,
            demo,
            dev,
        } => {
            init_logging(&config.log);
            let mut opts = RunOptions::from_config(&config);
            opts.api = !workers_only;
            opts.workers = !api_only;
            opts.demo = demo;
            opts.dev = dev;
            let running = app::start(config, opts, Clock::default(), None)
                .await
                .map_err(|e| e.to_string())?;
            running.wait().await.map_err(|e| e.to_string())
        }
    }
}
