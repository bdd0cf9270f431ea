//! The `footfall-aggregator` binary: parses the command line and runs the command.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use footfall_aggregator::cli::{
    BackfillArgs, Cli, Command, GoalAction, GoalArgs, ReportArgs, SubjectAction, SubjectArgs,
    TokenAction,
};
use footfall_aggregator::day::Day;
use footfall_aggregator::report::{self, Request};
use footfall_aggregator::subject::{self, Subject};
use footfall_aggregator::{audit, funnel, goals, keygen, retention, rollup, serve, token};
use footfall_seal::key_file;
use footfall_store::config::SchemaArgs;
use footfall_store::migrations;

fn main() -> ExitCode {
    footfall_cli::init_logging();
    footfall_cli::exit(run())
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
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
        Command::Retention(SchemaArgs {
            clickhouse: ch,
            retention: kept,
        }) => {
            let purged =
                retention::enforce(&ch.client(), &ch.layout(), kept.retention_days).await?;
            for p in purged {
                println!(
                    "{}: deleted {} rows older than {} days",
                    p.table, p.rows, p.days
                );
            }
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
            .await?;
            // Visits of the days still going on are computed as `serve` would, so that a first
            // export right after holds them.
            let today = Day::today();
            rollup::refresh(&ch.client(), &ch.layout(), today.plus(-1), today).await?;
            println!("schema up to date (migrations applied now: {applied:?})");
        }
        Command::Backfill(args) => run_backfill(args).await?,
        Command::Export(args) => run_export(args).await?,
        Command::Serve(args) => {
            let server = serve::start(args).await?;
            shutdown_signal().await;
            tracing::info!("shutting down");
            server.shutdown().await;
        }
        Command::Token(args) => match args.action {
            TokenAction::Create {
                name,
                reports,
                sites,
                months_only,
                clickhouse,
            } => {
                let t = token::create(&clickhouse.client(), &name, &reports, &sites, months_only)
                    .await?;
                println!("token for {name} (shown once; only its hash is kept):");
                println!("{t}");
            }
            TokenAction::List(ch) => {
                for t in token::list(&ch.client()).await? {
                    let all = |v: &[String]| {
                        if v.is_empty() {
                            "all".to_owned()
                        } else {
                            v.join(",")
                        }
                    };
                    println!(
                        "{}\treports: {}\tsites: {}\tranges: {}",
                        t.name,
                        all(&t.reports),
                        all(&t.sites),
                        if t.months_only { "whole months" } else { "any" }
                    );
                }
            }
            TokenAction::Revoke { name, clickhouse } => {
                token::revoke(&clickhouse.client(), &name).await?;
                println!("revoked {name}");
            }
        },
        Command::Goal(args) => run_goal(args).await?,
        Command::Audit(args) => {
            let since = match &args.since {
                Some(s) => Some(
                    Day::parse(s)
                        .with_context(|| format!("'{s}' is not a date; give YYYY-MM-DD"))?,
                ),
                None => None,
            };
            let filter = audit::Filter {
                actor: args.actor,
                action: args.action,
                since,
                limit: args.limit,
            };
            for entry in audit::list(&args.clickhouse.client(), &filter).await? {
                println!("{}", entry.line());
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run_backfill(args: BackfillArgs) -> anyhow::Result<()> {
    let day =
        |s: &str| Day::parse(s).with_context(|| format!("'{s}' is not a date; give YYYY-MM-DD"));
    let (from, to) = (day(&args.from)?, day(&args.to)?);
    anyhow::ensure!(from <= to, "--from must not be after --to");
    let rows = rollup::backfill(
        &args.clickhouse.client(),
        &args.clickhouse.layout(),
        from,
        to,
    )
    .await?;
    println!("rollups recomputed for {from}..{to} ({rows} visit rows)");
    Ok(())
}

async fn run_export(args: ReportArgs) -> anyhow::Result<()> {
    let rules = args.privacy.rules()?;
    let mut req = Request::parse(
        &args.report,
        &args.from,
        &args.to,
        args.site.as_deref(),
        &rules,
    )?;
    if let Some(steps) = &args.steps {
        req.steps = Some(funnel::parse_steps(steps)?);
    }
    let client = args.clickhouse.client();
    // Audited (and charged to the budget) before it is handed out.
    let table = report::export(&client, &audit::cli_actor(), &req).await?;
    let csv = table.csv();
    match &args.output {
        Some(path) => {
            std::fs::write(path, &csv).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout()
            .write_all(&csv)
            .context("writing the CSV")?,
    }
    if table.rows.is_empty() && table.suppressed > 0 {
        tracing::warn!(
            suppressed = table.suppressed,
            "every row stands for fewer than {} visitors and was withheld; --min-visitors sets K \
             (at least 2)",
            req.rules.min_visitors
        );
    }
    tracing::info!(
        report = req.report.name(),
        rows = table.rows.len(),
        suppressed = table.suppressed,
        "report exported"
    );
    Ok(())
}

async fn run_goal(args: GoalArgs) -> anyhow::Result<()> {
    match args.action {
        GoalAction::Add {
            site,
            name,
            page,
            event,
            property,
            clickhouse,
        } => {
            let goal = goals::add(
                &clickhouse.client(),
                &site,
                &name,
                page.as_deref(),
                event.as_deref(),
                property.as_deref(),
            )
            .await?;
            println!(
                "goal '{}' of {}: {}",
                goal.name,
                goal.site,
                goal.definition()
            );
        }
        GoalAction::List { site, clickhouse } => {
            for goal in goals::list(&clickhouse.client(), site.as_deref()).await? {
                println!("{}\t{}\t{}", goal.site, goal.name, goal.definition());
            }
        }
        GoalAction::Remove {
            site,
            name,
            clickhouse,
        } => {
            goals::remove(&clickhouse.client(), &site, &name).await?;
            println!("removed goal '{name}' of {site}");
        }
    }
    Ok(())
}

async fn run_subject(args: SubjectArgs) -> anyhow::Result<()> {
    match args.action {
        SubjectAction::Export(args) => {
            let subject = Subject::from_who(&args.who)?;
            let key_path = args
                .ip_private_key
                .clone()
                .unwrap_or_else(|| args.data.data_dir.join(key_file::PRIVATE_FILE));
            let key =
                key_file::load_private_key(&args.data.data_dir, args.ip_private_key.as_deref())?;
            let client = args.clickhouse.client();
            let export = subject::export(&client, &args.clickhouse.layout(), &subject, &key)
                .await
                .with_context(|| {
                    format!(
                        "subject export with the IP private key {}",
                        key_path.display()
                    )
                })?;
            let events = ["events", "email_opens"]
                .iter()
                .filter_map(|k| export.get(k).and_then(|v| v.as_array()))
                .map(|v| v.len() as u64)
                .sum();
            // Recorded before it is handed out, without naming the subject.
            let mut entry =
                audit::Entry::new(&audit::cli_actor(), audit::Action::SubjectExport, 200);
            entry.rows = events;
            audit::write(&client, &entry).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&export).context("writing the export")?
            );
            tracing::info!("subject export written");
        }
        SubjectAction::Erase(args) => {
            let client = args.clickhouse.client();
            let layout = args.clickhouse.layout();
            let erased = subject::erase(&client, &layout, &Subject::from_who(&args.who)?).await?;
            let mut entry =
                audit::Entry::new(&audit::cli_actor(), audit::Action::SubjectErase, 200);
            entry.rows = erased.events + erased.identities;
            entry.detail = format!(
                "{} visitor ids, rollups of {} days recomputed",
                erased.visitor_ids, erased.days
            );
            audit::write(&client, &entry).await?;
            println!(
                "erased {} events and {} identity rows across {} visitor ids, and recomputed the rollups of {} days: nothing of what the subject did before this erasure remains. Their hits still waiting in a collector's spool are dropped when it sends them; what they do from now on is recorded as usual",
                erased.events, erased.identities, erased.visitor_ids, erased.days
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
