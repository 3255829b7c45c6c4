//! The `runcore` binary: parse the command line, start logging, run the command.

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use runcore::cli::{self, Cli, Command, RunsCommand};
use runcore::config::{LogFormat, ServeArgs};
use runcore::env::ENV_LOG;
use runcore::listen::Listener;
use runcore::server::serve;

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(ENV_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(io::stderr().is_terminal()).init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn report(result: Result<(), cli::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runcore: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` on a one-thread runtime (the short CLI commands).
fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, cli::CliError>>,
) -> Result<T, cli::CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(cli::CliError::from)
        .and_then(|rt| rt.block_on(work))
}

/// `runcore serve`: exit 2 for bad settings, 1 when serving fails.
/// How long an idle blocking thread (fsyncs, store rewrites) waits for work: longer
/// than the gaps between idle runs' flushes (a system-metrics sample every 15 s by
/// default), so they are not made again for each (tokio's default is 10 s).
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(60);

fn serve_command(args: ServeArgs) -> ExitCode {
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runcore: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runcore: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let listener = Listener::bind(&config.listen, config.socket_group.as_deref()).await?;
        serve(listener, config, stop_signal()).await?;
        Ok(())
    });
    // serve kept to --shutdown-grace; a blocking task still running (a wedged
    // disk) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("runcore: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `runcore ui`: exit 2 for bad settings, 1 when serving fails.
fn ui_command(args: runcore::ui::UiArgs) -> ExitCode {
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runcore: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(LogFormat::Text);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runcore: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout();
    match runtime.block_on(runcore::ui::run_standalone(config, stop_signal(), &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runcore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Serve(args) => serve_command(*args),
        Command::Ui(args) => ui_command(*args),
        Command::Health { address, service } => {
            match block_on(cli::health(&address, &service, &mut out)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => report(Err(e)),
            }
        }
        Command::Sync {
            dirs,
            backend,
            give_up_after,
        } => {
            init_tracing(LogFormat::Text);
            let result = cli::parse_duration(&give_up_after).and_then(|give_up| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(cli::CliError::from)
                    .and_then(|rt| rt.block_on(cli::sync(&dirs, &backend, give_up, &mut out)))
            });
            report(result)
        }
        Command::Reap { backend, stale } => {
            init_tracing(LogFormat::Text);
            report(block_on(cli::reap(&backend, &stale, &mut out)))
        }
        Command::WandbEnv {
            wandb_listen,
            port_file,
            export,
        } => report(block_on(cli::wandb_env(
            wandb_listen.as_deref(),
            port_file.as_deref(),
            export,
            &mut out,
        ))),
        Command::Exec {
            address,
            wandb_listen,
            data_dir,
            command,
        } => {
            let args = cli::ExecArgs {
                address,
                wandb_listen,
                data_dir,
                command,
            };
            match block_on(cli::exec(args)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => report(Err(e)),
            }
        }
        Command::Runs { command } => report(match command {
            RunsCommand::Ls { project, data_dir } => {
                cli::runs_ls(&data_dir, project.as_deref(), &mut out)
            }
            RunsCommand::Show { id, data_dir } => cli::runs_show(&data_dir, &id, &mut out),
            RunsCommand::Stop { id, address } => block_on(cli::runs_stop(&address, &id, &mut out)),
        }),
    }
}
