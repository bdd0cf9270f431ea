//! The `footfall-aggregator` binary: parses the command line and runs the command.

use anyhow::Context as _;
use clap::Parser as _;
use footfall_aggregator::cli::{Cli, Command, SubjectAction, SubjectArgs};
use footfall_aggregator::subject::{self, Subject};
use footfall_aggregator::{keygen, retention};
use footfall_collector::keys;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries the command's output (JSON for `subject export`).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FOOTFALL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Keygen(args) => {
            let pair = keygen::run(&args.data.data_dir)?;
            println!(
                "private key: {} (only for `subject` commands; keep it off collector hosts)",
                pair.private_path.display()
            );
            println!(
                "public key:  {} (give it to collectors as FOOTFALL_IP_PUBLIC_KEY)",
                pair.public_path.display()
            );
            println!("{}", pair.public_key);
        }
        Command::Subject(args) => run_subject(args).await?,
        Command::Retention(ch) => {
            let purged = retention::enforce(&ch.client(), ch.retention_days).await?;
            for p in purged {
                println!(
                    "{}: deleted {} rows older than {} days",
                    p.table, p.rows, p.days
                );
            }
        }
    }
    Ok(())
}

async fn run_subject(args: SubjectArgs) -> anyhow::Result<()> {
    match args.action {
        SubjectAction::Export(args) => {
            let subject = Subject::from_who(&args.who)?;
            let key =
                keys::load_ip_private_key(&args.data.data_dir, args.ip_private_key.as_deref())?;
            let export = subject::export(&args.clickhouse.client(), &subject, &key).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&export).context("writing the export")?
            );
            tracing::info!("subject export written");
        }
        SubjectAction::Erase(args) => {
            let erased =
                subject::erase(&args.clickhouse.client(), &Subject::from_who(&args.who)?).await?;
            println!(
                "erased {} events and {} identity rows across {} visitor ids; nothing of the subject remains",
                erased.events, erased.identities, erased.visitor_ids
            );
            tracing::info!(
                events = erased.events,
                identities = erased.identities,
                "subject erased"
            );
        }
    }
    Ok(())
}
