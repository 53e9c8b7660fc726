//! The `tollgate` binary: parses the command line, loads settings, dispatches.

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use tollgate::{
    auth::users,
    cli::{AdminCommand, Cli, Command, OpenapiArgs, ServeArgs},
    config::Settings,
    db, demo,
    http::openapi,
    startup::{self, Application},
    telemetry,
};

/// mimalloc instead of the system allocator: a served call allocates and frees many small
/// objects across threads (request, headers, usage event, the writer's batches), and glibc's
/// malloc/free took ~15% of a loaded server's CPU (`docs/benchmarks.md`). The
/// `system-allocator` feature leaves it out, for heap profilers.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option: how long freed memory stays committed before going back to the OS.
const PURGE_DELAY: &str = "MIMALLOC_PURGE_DELAY";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi(args) = &cli.command {
        return write_or_check_openapi(args);
    }
    if matches!(cli.command, Command::Serve(_)) && std::env::var_os(PURGE_DELAY).is_none() {
        let err = restart_purging_at_once();
        eprintln!("tollgate: warning: could not restart with {PURGE_DELAY}=0: {err}");
    }
    let settings = match load_settings(&cli) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("tollgate: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_tracing(&settings.log, std::io::stderr);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = runtime
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(cli.command, settings)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "tollgate failed");
            eprintln!("tollgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Restarts the process (`exec`: same PID, arguments and environment) with mimalloc told to
/// purge freed memory at once instead of a second later: a server holding 100,000 active
/// keys settles at ~140 MB instead of ~175 MB (`docs/benchmarks.md`, memory). mimalloc reads
/// its options from the environment as the process starts, and setting them from code takes
/// FFI, which this crate's `forbid(unsafe_code)` rules out. An operator's own
/// `MIMALLOC_PURGE_DELAY` is left alone. Returns only when the restart failed.
fn restart_purging_at_once() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return err,
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    command.args(args).env(PURGE_DELAY, "0").exec()
}

/// Settings from defaults, file and environment, adjusted by command-line flags, validated.
fn load_settings(cli: &Cli) -> Result<Settings, tollgate::config::ConfigError> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Command::Serve(ServeArgs {
        addr,
        no_workers,
        no_migrate,
        ..
    }) = &cli.command
    {
        if let Some(addr) = addr {
            settings.server.addr = addr.clone();
        }
        settings.jobs.in_process &= !no_workers;
        settings.database.migrate_on_start &= !no_migrate;
    }
    settings.finalize()
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let effective = serde_json::to_value(&settings)?;
    tracing::info!(config = %effective, mode = ?settings.mode(), "configuration loaded");
    match command {
        Command::Serve(args) => serve(settings, args.demo).await,
        Command::Worker => {
            let state = startup::build_state(settings).await?;
            let cancel = tokio_util::sync::CancellationToken::new();
            startup::cancel_on_signals(cancel.clone());
            tracing::info!("worker running");
            startup::run_workers(state, cancel).await;
            Ok(())
        }
        Command::Migrate => {
            let conn = db::connect(&settings.database).await?;
            db::migrate(&conn).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Admin(AdminCommand::CreateUser(args)) => {
            let conn = db::connect(&settings.database).await?;
            db::migrate(&conn).await?;
            let user =
                users::create_platform_admin(&conn, &args.email, &args.password, args.name).await?;
            println!("platform admin {} ready (id {})", user.email, user.id);
            Ok(())
        }
        Command::Admin(AdminCommand::ImportKey(args)) => {
            let conn = db::connect(&settings.database).await?;
            db::migrate(&conn).await?;
            let done = tollgate::commands::import_key(&conn, &settings, args).await?;
            println!("{done}");
            Ok(())
        }
        Command::Export(args) => {
            let conn = db::connect(&settings.database).await?;
            db::migrate(&conn).await?;
            tollgate::commands::export(&conn, args).await?;
            Ok(())
        }
        Command::Demo => {
            let conn = db::connect(&settings.database).await?;
            db::migrate(&conn).await?;
            let demo = demo::seed_with_history(&conn).await?;
            println!("{}", demo.describe(&settings.public_url()));
            Ok(())
        }
        Command::Openapi(_) => unreachable!("handled before settings are loaded"),
    }
}

async fn serve(settings: Settings, with_demo: bool) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let state = app.state().clone();
    let url = format!(
        "http://{}:{}",
        state.settings.socket_addr().ip(),
        app.port()
    );
    if with_demo {
        let demo = demo::seed(&state.db).await?;
        println!("{}", demo.describe(&url));
        let _ = state.demo_login.set(demo::login_hint());
        let db = state.db.clone();
        tokio::spawn(async move {
            if let Err(err) = demo::ensure_history(&db, &demo, demo::history::DAYS).await {
                tracing::warn!(error = %err, "storing the demo traffic history failed");
            }
        });
    }
    tracing::info!(%url, docs = %format!("{url}/docs/"), "tollgate listening");
    startup::cancel_on_signals(app.cancel_token());
    app.run_until_stopped().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn write_or_check_openapi(args: &OpenapiArgs) -> ExitCode {
    let current = openapi::spec_json();
    if args.check {
        let committed = std::fs::read_to_string(&args.output).unwrap_or_default();
        if committed == current {
            println!("{} is up to date", args.output.display());
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "{} differs from the code: run `cargo run -- openapi` and commit the result",
            args.output.display()
        );
        return ExitCode::FAILURE;
    }
    match write_file(&args.output, &current) {
        Ok(()) => {
            println!("wrote {}", args.output.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("tollgate: writing {}: {err}", args.output.display());
            ExitCode::FAILURE
        }
    }
}

fn write_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)
}
