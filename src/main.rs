//! The `authgate` command line (SPEC §1). Errors are printed once, with their cause chain, and
//! mapped to exit codes here and nowhere else: 0 success, 1 invalid configuration or input,
//! 2 runtime failure, 3 `explain` denied.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use authgate::metrics::Metrics;
use authgate::server::{self, ConfigOrigin, Control};

/// jemalloc instead of glibc's malloc: with the settings in `.cargo/config.toml` it hands the
/// memory of closed connections back to the system, where glibc kept an arena the size of the
/// largest spike (README "Performance").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "authgate",
    version,
    about = "Reverse-proxy authentication gateway"
)]
struct Cli {
    /// Log format; default text on a terminal, json otherwise.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Config file; default $AUTHGATE_CONFIG, else config/authgate.toml.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Reload (as on SIGHUP) when the config or a file it names changes; polled each second.
        #[arg(long)]
        watch: bool,
    },
    /// Validate a config completely without binding ports or fetching anything.
    Check {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Run the gateway with a built-in identity provider and echo upstream.
    Demo,
    /// Trace the decision for one request, nothing proxied.
    Explain(authgate::explain::Args),
    /// Mint a test token for an hmac_secret or jwks_file issuer of a config (stdout).
    Token(authgate::token::Args),
    /// API key helpers.
    Apikey {
        #[command(subcommand)]
        command: Apikey,
    },
}

#[derive(Subcommand)]
enum Apikey {
    /// Make a random key: prints it once, then the `[[keys]]` entry holding only its hash.
    New {
        /// Key id (A-Z a-z 0-9 -): logged, and part of the key.
        #[arg(long)]
        id: String,
        /// Client id the key authenticates as; default: the id.
        #[arg(long)]
        client_id: Option<String>,
        /// Granted scopes.
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        scopes: Vec<String>,
    },
}

/// How a command failed, which decides the exit code.
enum Failure {
    Input(anyhow::Error),
    Runtime(anyhow::Error),
}

fn config_path(config: Option<PathBuf>) -> PathBuf {
    config
        .or_else(|| std::env::var_os("AUTHGATE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/authgate.toml"))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage(&error),
    };
    let json = match cli.log_format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    authgate::logging::init(json);

    let result = match cli.command {
        Command::Check { config } => check(config_path(config)),
        Command::Run { config, watch } => {
            runtime().and_then(|rt| rt.block_on(run(config_path(config), watch)))
        }
        Command::Apikey {
            command:
                Apikey::New {
                    id,
                    client_id,
                    scopes,
                },
        } => apikey_new(&id, client_id.as_deref().unwrap_or(&id), &scopes),
        Command::Demo => runtime().and_then(|rt| {
            rt.block_on(authgate::demo::run())
                .map_err(|e| Failure::Runtime(e.into()))
        }),
        Command::Token(args) => runtime().and_then(|rt| {
            let minted = rt
                .block_on(authgate::token::run(&args))
                .map_err(|e| Failure::Input(e.into()))?;
            if let Some(refused) = minted.refused {
                eprintln!(
                    "authgate: note: issuer {} would refuse this token: {refused}",
                    args.issuer
                );
            }
            println!("{}", minted.token);
            Ok(())
        }),
        Command::Explain(args) => {
            let code = runtime().map_or(ExitCode::from(2), |rt| {
                match rt.block_on(authgate::explain::run(&args)) {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::from(3),
                    Err(error) => {
                        eprintln!("authgate: {error:#}");
                        ExitCode::from(1)
                    }
                }
            });
            authgate::logging::flush();
            return code;
        }
    };
    // Lines still queued for the log writer thread go out before the process ends.
    authgate::logging::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(error)) => {
            eprintln!("authgate: {error:#}");
            ExitCode::from(1)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("authgate: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `--help` and `--version` print to stdout and succeed; every other parse failure (a
/// malformed or unknown argument, a missing value or command) is bad input: exit 1, not
/// clap's default 2, which SPEC §1 keeps for runtime failures.
fn usage(error: &clap::Error) -> ExitCode {
    let _ = error.print();
    match error.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            ExitCode::SUCCESS
        }
        _ => ExitCode::from(1),
    }
}

/// Which tokio scheduler the gateway runs on.
#[derive(Debug, PartialEq, Eq)]
enum Scheduler {
    /// One thread: no work-stealing machinery, no cross-thread wake-ups.
    CurrentThread,
    /// Work-stealing workers: the given count, or tokio's default (one per available CPU).
    MultiThread(Option<usize>),
}

/// `AUTHGATE_WORKER_THREADS` (`configured`) wins when it is a positive count: 1 means the
/// current-thread scheduler. Otherwise the CPUs the process may use (`available`: the
/// affinity mask and the cgroup CPU quota, as `std::thread::available_parallelism` reads
/// them) decide: with one, extra workers only add wake-ups and stealing, so the
/// current-thread scheduler is the default; with more, one worker per CPU.
fn scheduler(configured: Option<&str>, available: Option<usize>) -> Scheduler {
    match configured.and_then(|value| value.trim().parse::<usize>().ok()) {
        Some(1) => Scheduler::CurrentThread,
        Some(threads) if threads > 1 => Scheduler::MultiThread(Some(threads)),
        // Unset, 0 or not a number: the CPUs decide.
        Some(_) | None => match available {
            Some(1) => Scheduler::CurrentThread,
            Some(_) | None => Scheduler::MultiThread(None),
        },
    }
}

/// The tokio runtime, per [`scheduler`].
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    let configured = std::env::var("AUTHGATE_WORKER_THREADS").ok();
    let available = std::thread::available_parallelism().ok().map(usize::from);
    let mut builder = match scheduler(configured.as_deref(), available) {
        Scheduler::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Scheduler::MultiThread(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = threads {
                builder.worker_threads(threads);
            }
            builder
        }
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(anyhow::Error::new(e).context("cannot start the runtime")))
}

fn apikey_new(id: &str, client_id: &str, scopes: &[String]) -> Result<(), Failure> {
    let (key, entry) = authgate::auth::api_keys::new_entry(id, client_id, scopes)
        .map_err(|message| Failure::Input(anyhow::anyhow!(message)))?;
    println!("key: {key}");
    println!("# The key is shown only now: give it to the client. Add this entry to the key file");
    println!("# (it holds only the key's hash), then reload authgate (SIGHUP).");
    print!("{entry}");
    Ok(())
}

fn check(path: PathBuf) -> Result<(), Failure> {
    let origin = ConfigOrigin::File(path.clone());
    let snapshot = origin
        .load(&Metrics::new(), None)
        .map_err(|e| Failure::Input(e.into()))?;
    println!(
        "{}: ok ({} routes, {} upstreams, {} issuers)",
        path.display(),
        snapshot.routes.len(),
        snapshot.upstreams.len(),
        snapshot.issuers.len()
    );
    Ok(())
}

async fn run(path: PathBuf, watch: bool) -> Result<(), Failure> {
    let origin = ConfigOrigin::File(path.clone());
    let metrics = Metrics::new();
    let snapshot = origin
        .load(&metrics, None)
        .map_err(|e| Failure::Input(e.into()))?;
    let fds = server::fds::raise_and_check(&snapshot).map_err(|e| Failure::Input(e.into()))?;
    tracing::debug!(limit = fds, "file descriptor limit");
    metrics.config_loaded(true);
    let mut bound = server::bind(origin, snapshot, metrics)
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    // Type=notify under systemd; a malformed $NOTIFY_SOCKET is the unit's error: exit 2.
    if let Some(notifier) =
        server::notify::Notifier::from_env().map_err(|e| Failure::Runtime(e.into()))?
    {
        bound = bound.with_notifier(notifier);
    }
    let (control, receiver) = tokio::sync::mpsc::channel(8);
    if watch {
        server::file_watch::spawn(path, control.clone(), server::file_watch::INTERVAL);
    }
    server::signals::forward(control).map_err(|e| Failure::Runtime(e.into()))?;
    bound.serve(receiver).await;
    let _ = Control::Shutdown;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{scheduler, Scheduler};

    #[test]
    fn one_available_cpu_picks_the_current_thread_scheduler() {
        assert_eq!(scheduler(None, Some(1)), Scheduler::CurrentThread);
        assert_eq!(scheduler(None, Some(2)), Scheduler::MultiThread(None));
        assert_eq!(scheduler(None, Some(64)), Scheduler::MultiThread(None));
        // Unknown CPU count: tokio's default.
        assert_eq!(scheduler(None, None), Scheduler::MultiThread(None));
    }

    #[test]
    fn the_environment_variable_overrides_the_cpu_count() {
        assert_eq!(scheduler(Some("1"), Some(8)), Scheduler::CurrentThread);
        assert_eq!(
            scheduler(Some("4"), Some(1)),
            Scheduler::MultiThread(Some(4))
        );
        assert_eq!(
            scheduler(Some(" 2 "), Some(1)),
            Scheduler::MultiThread(Some(2))
        );
        // Not a usable count: as if unset.
        for value in ["0", "", "many", "-1"] {
            assert_eq!(
                scheduler(Some(value), Some(1)),
                Scheduler::CurrentThread,
                "{value}"
            );
            assert_eq!(
                scheduler(Some(value), Some(4)),
                Scheduler::MultiThread(None),
                "{value}"
            );
        }
    }
}
