//! The command line: `serve`, `worker`, `migrate`, `openapi`, `admin`, `demo`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tollgate — API usage metering, quota and cost control.
///
/// Runs with no configuration in embedded mode (SQLite file and in-process counters under
/// ./data). Set DATABASE_URL (PostgreSQL) and REDIS_URL for production; every setting can be
/// given in a TOML file (--config) or as TOLLGATE__SECTION__KEY environment variables.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, propagate_version = true)]
pub struct Cli {
    /// A TOML file overriding the built-in defaults (see config/default.toml).
    #[arg(
        long,
        short,
        global = true,
        env = "TOLLGATE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API, dashboard and docs (background jobs run in-process by default).
    Serve(ServeArgs),
    /// Run background jobs only, for deployments that scale them separately.
    Worker,
    /// Apply pending database migrations (safe to run repeatedly).
    Migrate,
    /// Write the OpenAPI document, or check the committed one is current.
    Openapi(OpenapiArgs),
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Create the demo tenant, users and API keys (idempotent) and print how to log in.
    Demo,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind, overriding server.addr (e.g. 0.0.0.0:8080).
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Do not run background jobs in this process (run `tollgate worker` instead).
    #[arg(long)]
    pub no_workers: bool,
    /// Do not apply pending migrations on start.
    #[arg(long)]
    pub no_migrate: bool,
    /// Create the demo tenant, users and keys first, and print the login.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// Compare instead of writing; exit non-zero when the file differs from the code.
    #[arg(long)]
    pub check: bool,
    /// Where the document goes.
    #[arg(long, default_value = "openapi/openapi.json", value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform administrator (or make an existing user one).
    CreateUser(CreateUserArgs),
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// The administrator's email address (the login).
    #[arg(long)]
    pub email: String,
    /// The password; read from TOLLGATE_ADMIN_PASSWORD when not given. At least 12 characters.
    #[arg(long, env = "TOLLGATE_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
}
