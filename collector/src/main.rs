//! The `footfall-collector` binary: parses the command line and runs the command.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser as _;
use footfall_collector::config::{Cli, Command, ReplayArgs, SignArgs, SignCommand, SpoolCommand};
use footfall_collector::hit::{customer, email};
use footfall_collector::signing::Signer;
use footfall_collector::sink::quarantine::{QUARANTINE_DIR, Quarantine};
use footfall_collector::{keys, server};
use footfall_store::config::SchemaArgs;
use footfall_store::migrations;
use footfall_store::site::valid_site;

// Hits are allocated on the request threads and freed on the writer's: mimalloc handles that
// pattern far better than glibc's malloc (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    footfall_cli::init_logging();
    footfall_cli::exit(run())
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(Box::new(cli.serve))) {
        Command::Serve(args) => {
            let dev = args.dev;
            let collector = server::start(*args).await?;
            let addr = collector.local_addr();
            let metrics = collector
                .metrics_addr()
                .map_or_else(|| "off".to_owned(), |at| format!("http://{at}/metrics"));
            tracing::info!(%addr, %metrics, dev, "collector listening");
            shutdown_signal().await?;
            tracing::info!("shutting down: finishing requests, spooling and storing every hit");
            let report = collector.shutdown().await;
            if report.bytes_left > 0 {
                tracing::warn!(
                    bytes = report.bytes_left,
                    "ClickHouse unreachable: hits stay in the spool for the next start"
                );
            }
            tracing::info!(rows_written = report.rows_written, "collector stopped");
        }
        Command::Migrate(SchemaArgs {
            clickhouse: ch,
            retention,
        }) => {
            let applied = migrations::migrate(
                &ch.server_client(),
                &ch.clickhouse_database,
                retention.retention_days,
                &ch.layout(),
            )
            .await
            .context("applying the schema failed")?;
            println!(
                "schema of database {} is up to date (applied now: {applied:?})",
                ch.clickhouse_database
            );
        }
        Command::Sign(args) => println!("{}", sign(args)?),
        Command::Spool(SpoolCommand::ReplayQuarantine(args)) => replay_quarantine(args).await?,
    }
    Ok(())
}

/// What `sign` prints: an email-open marker's path, or a customer link's query parameters (and,
/// on standard error so that scripts can take standard output as it is, when the link expires).
fn sign(args: SignArgs) -> anyhow::Result<String> {
    let signer = Signer::new(&keys::load_secret(
        &args.data_dir,
        args.secret.as_deref(),
        false,
    )?);
    Ok(match args.what {
        SignCommand::Email {
            campaign,
            recipient,
        } => email::marker_path(&email::token(&campaign, &recipient, &signer)?),
        SignCommand::Customer { id, site, links } => {
            anyhow::ensure!(
                valid_site(&site),
                "--site must be 1 to 128 letters, digits, '.', '-', '_' or ':', as the pixel's `site`"
            );
            let now = SystemTime::now();
            let issued = now.duration_since(UNIX_EPOCH)?.as_secs() as i64;
            let link = customer::sign(&id, &site, issued, &signer)?;
            let expires = now + Duration::from_secs(links.max_age_secs() as u64);
            eprintln!(
                "expires {} ({} minutes; FOOTFALL_CUSTOMER_LINK_MINUTES)",
                httpdate::fmt_http_date(expires),
                links.customer_link_minutes
            );
            link
        }
    })
}

/// Inserts every quarantined batch; fails (after trying them all) if any is still refused.
async fn replay_quarantine(args: ReplayArgs) -> anyhow::Result<()> {
    let quarantine = Quarantine::new(args.data_dir.join(QUARANTINE_DIR));
    let replayed = quarantine
        .replay(&args.clickhouse.client())
        .await
        .with_context(|| format!("reading {}", quarantine.dir().display()))?;
    let mut failed = 0;
    for done in &replayed {
        match &done.result {
            Ok(rows) => println!("stored {rows} rows from {}", done.file.display()),
            Err(error) => {
                failed += 1;
                println!("still refused: {}: {error}", done.file.display());
            }
        }
    }
    println!(
        "{} of {} quarantined batches stored",
        replayed.len() - failed,
        replayed.len()
    );
    anyhow::ensure!(failed == 0, "{failed} batches stay in the quarantine");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT")?,
    }
    Ok(())
}
