//! `status-service`: service-a and service-b in one binary.
//!
//! ```text
//! cargo run --release                     # both services on 127.0.0.1:8201 and :8202
//! status-service serve                    # one service from env: SERVICE_NAME, SERVER_PORT, PEER_URL...
//! status-service healthcheck              # exit 0 when the local service is SERVING (container health check)
//! status-service status service-b-sc:8202 # print a service's GetStatus as JSON
//! status-service --help                   # every flag and its environment variable
//! ```
//!
//! Exit codes: 0 done, 1 failed at run time, 64 bad configuration.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use status_services::{
    client,
    config::{
        Cli, Command, EXIT_BAD_CONFIG, HealthcheckArgs, LocalArgs, LogFormat, ServeArgs, StatusArgs,
    },
    emf, fd_limit, local,
    logging::{self, LogInitError},
    metrics::Metrics,
    server, shutdown,
};
use tokio_util::sync::CancellationToken;

/// Bound on tasks the runtime still runs at exit (connections the shutdown
/// timeout gave up on), so exit never hangs.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);
/// The least the runtime and the log queue each get at exit, even when the
/// stop window (`DRAIN_DELAY` + `SHUTDOWN_TIMEOUT`) is used up.
const EXIT_MIN_WAIT: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => return bad_config(error.to_string()),
        Err(help_or_version) => {
            let _ = help_or_version.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        None => local_server(cli.local),
        Some(Command::Local(args)) => local_server(args),
        Some(Command::Serve(args)) => run_server(
            args.log_format,
            args.drain_delay
                .saturating_add(args.runtime.shutdown_timeout),
            |shutdown| serve_command(args, shutdown),
        ),
        Some(Command::Healthcheck(args)) => run_client(healthcheck_command(args)),
        Some(Command::Status(args)) => run_client(status_command(args)),
    }
}

/// Prints the first line of a configuration error ("error: invalid value
/// '0' for '--server-port <SERVER_PORT>': ...") and exits 64.
fn bad_config(message: impl std::fmt::Display) -> ExitCode {
    let message = message.to_string();
    let line = message.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    eprintln!("error: {line}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

/// Why a server command ended early.
enum Failure {
    Config(String),
    Runtime(String),
}

fn local_server(args: LocalArgs) -> ExitCode {
    run_server(
        args.log_format,
        args.drain_delay
            .saturating_add(args.runtime.shutdown_timeout),
        |shutdown| local_command(args, shutdown),
    )
}

/// Runs a server command until it ends (after a signal: within
/// `stop_window`, the drain delay plus the shutdown timeout). The log writer
/// outlives the runtime, so lines written while the runtime drops its last
/// tasks still reach stdout; exit waits for them only as long as the stop
/// window has left (at least [`EXIT_MIN_WAIT`], at most
/// [`logging::LOG_FLUSH_TIMEOUT`]), so a blocked stdout cannot hold it.
fn run_server<F, Fut>(log_format: LogFormat, stop_window: Duration, command: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let (writer, logs) = match logging::init(log_format) {
        Ok(logs) => logs,
        Err(error @ LogInitError::Filter { .. }) => return bad_config(error),
        Err(error @ LogInitError::Sink(_)) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if log_format == LogFormat::Json {
        emf::set_output(writer);
    }
    fd_limit::raise_and_log();
    let shutdown = CancellationToken::new();
    let stopping = match shutdown::cancel_on_signal(shutdown.clone(), logs.flusher()) {
        Ok(stopping) => stopping,
        Err(error) => {
            eprintln!("error: cannot handle signals: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(command(shutdown));
    let exit_wait = |most: Duration| {
        stopping
            .time_left(stop_window)
            .map_or(most, |left| left.min(most))
            .max(EXIT_MIN_WAIT)
    };
    runtime.shutdown_timeout(exit_wait(RUNTIME_SHUTDOWN_TIMEOUT));
    logs.flusher()
        .flush_within(exit_wait(logging::LOG_FLUSH_TIMEOUT));
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => bad_config(message),
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_command(args: ServeArgs, shutdown: CancellationToken) -> Result<(), Failure> {
    let config = args
        .service_config()
        .map_err(|e| Failure::Config(e.to_string()))?;
    let metrics = Metrics::start(args.runtime.metrics_interval).map_err(runtime_failure)?;
    let address = config.listen_address;
    let listener = server::bind(address)
        .map_err(|e| Failure::Runtime(format!("cannot listen on {address}: {e}")))?;
    server::serve(config, listener, metrics, shutdown)
        .await
        .map_err(runtime_failure)
}

async fn local_command(args: LocalArgs, shutdown: CancellationToken) -> Result<(), Failure> {
    let configs = args
        .service_configs()
        .map_err(|e| Failure::Config(e.to_string()))?;
    let metrics = Metrics::start(args.runtime.metrics_interval).map_err(runtime_failure)?;
    local::run(configs, metrics, shutdown)
        .await
        .map_err(runtime_failure)
}

fn runtime_failure(error: impl std::fmt::Display) -> Failure {
    Failure::Runtime(error.to_string())
}

fn run_client<Fut>(command: Fut) -> ExitCode
where
    Fut: Future<Output = ExitCode>,
{
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 only when the service on this host's port says SERVING.
async fn healthcheck_command(args: HealthcheckArgs) -> ExitCode {
    let port = match args.service.port() {
        Ok(port) => port,
        Err(error) => return bad_config(error),
    };
    let address = format!("127.0.0.1:{port}");
    match client::check_health(&address, args.timeout).await {
        Ok(status) if status == tonic_health::pb::health_check_response::ServingStatus::Serving => {
            println!("{}", status.as_str_name());
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("{address} is {}", status.as_str_name());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn status_command(args: StatusArgs) -> ExitCode {
    let response = match client::get_status(&args.address, args.timeout).await {
        Ok(response) => response,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string_pretty(&response) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot print the answer as JSON: {error}");
            ExitCode::FAILURE
        }
    }
}
