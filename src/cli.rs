//! The command line: `serve`, `worker`, `migrate`, `openapi`, `admin`, `demo`, `export`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
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
    /// Export a tenant's usage (rollup buckets or raw events) as CSV or JSON.
    Export(ExportArgs),
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
    /// Import an API key issued by another gateway, so its clients keep working unchanged.
    ///
    /// The secret is read from TOLLGATE_IMPORT_SECRET, or else from the first line of stdin;
    /// it is never taken from the command line (shell history, process lists).
    ImportKey(ImportKeyArgs),
}

#[derive(Debug, Args)]
pub struct ImportKeyArgs {
    /// The tenant to import into: its id (`tnt_…`) or slug.
    #[arg(
        long,
        conflicts_with = "create_tenant",
        required_unless_present = "create_tenant"
    )]
    pub tenant: Option<String>,
    /// Import into the tenant with this name, creating it when it does not exist.
    #[arg(long, value_name = "NAME")]
    pub create_tenant: Option<String>,
    /// The key's name.
    #[arg(long)]
    pub name: String,
    /// Requests-per-minute override (default: the tenant's plan).
    #[arg(long)]
    pub per_minute: Option<i64>,
    /// Requests-per-hour override.
    #[arg(long)]
    pub per_hour: Option<i64>,
    /// Requests-per-day override.
    #[arg(long)]
    pub per_day: Option<i64>,
    /// Monthly quota override.
    #[arg(long)]
    pub per_month: Option<i64>,
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

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tenant whose usage to export: its id (`tnt_…`) or slug.
    #[arg(long)]
    pub tenant: String,
    /// Start of the window (RFC 3339, e.g. 2026-11-01T00:00:00Z; rounded down to the
    /// minute). Default: 24 hours before --to.
    #[arg(long, value_name = "TIME")]
    pub from: Option<DateTime<Utc>>,
    /// End of the window, exclusive (RFC 3339; rounded up to the minute). Default: now.
    #[arg(long, value_name = "TIME")]
    pub to: Option<DateTime<Utc>>,
    /// File format.
    #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
    pub format: String,
    /// One row per rollup bucket, or per metered call.
    #[arg(long, default_value = "bucket", value_parser = ["bucket", "event"])]
    pub level: String,
    /// Bucket size (bucket level). Default: minutes up to 6 hours, hours up to 14 days, days
    /// beyond.
    #[arg(long, value_parser = ["minute", "hour", "day"])]
    pub granularity: Option<String>,
    /// Where to write the export (default: standard output). Written to FILE.partial first
    /// and renamed when complete.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}
