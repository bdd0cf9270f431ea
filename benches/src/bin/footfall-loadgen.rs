//! `footfall-loadgen`: loads a running collector, then checks that nothing it acknowledged was
//! lost. See `footfall-loadgen --help` and BENCHMARKS.md.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser as _;
use footfall_benches::args::Args;
use footfall_benches::drive::{self, Plan};
use footfall_benches::report::{Report, RunInfo};
use footfall_benches::traffic::{Catalog, TrafficConfig};
use footfall_benches::verify::ClickHouse;
use rand::SeedableRng as _;
use rand::rngs::StdRng;

fn main() -> ExitCode {
    footfall_cli::init_logging();
    footfall_cli::exit(run_cli())
}

fn run_cli() -> anyhow::Result<()> {
    let args = Args::parse();
    args.check()?;
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads as usize)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    let report = runtime.block_on(run(&args))?;
    println!("{}", report.line());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        if path == "-" {
            println!("{json}");
        } else {
            std::fs::File::create(path)
                .and_then(|mut f| writeln!(f, "{json}"))
                .with_context(|| format!("cannot write {path}"))?;
        }
    }
    if report.counts.errors == report.counts.requests {
        anyhow::bail!(
            "no request was answered: is a collector listening on {}?",
            args.target
        );
    }
    match report.lost {
        Some(lost) if lost > 0 => anyhow::bail!("{lost} acknowledged hits were not stored"),
        _ => Ok(()),
    }
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let site = args.site.clone().unwrap_or_else(unique_site);
    let clickhouse = (!args.no_verify)
        .then(|| ClickHouse::new(&args.clickhouse))
        .transpose()?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let catalog = Arc::new(Catalog::new(
        TrafficConfig {
            site: site.clone(),
            pages: args.pages as usize,
            referrers: args.referrers as usize,
            new_visitor_share: args.new_visitor_share,
            beacon_share: args.beacon_share,
            host: args.target.to_string(),
        },
        &mut rng,
    ));
    let plan = Plan {
        target: args.target,
        connections: args.connections,
        rate: args.rate,
        duration: args.duration(),
        max_requests: args.max_requests,
        visitors: args.visitors,
        seed: args.seed,
    };
    tracing::info!(target = %plan.target, connections = plan.connections, rate = ?plan.rate, %site, "load starts");
    let outcome = drive::run(&plan, catalog).await;
    let run = RunInfo {
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        target: args.target.to_string(),
        connections: args.connections,
        rate: args.rate,
        site: site.clone(),
    };
    let mut report = Report::new(run, outcome.elapsed, outcome.counts, &outcome.histogram);
    if let Some(clickhouse) = clickhouse {
        tracing::info!(
            acknowledged = report.counts.acknowledged,
            "waiting for the collector to write every acknowledged hit"
        );
        let stored = clickhouse
            .wait_for(
                &site,
                report.counts.acknowledged,
                Duration::from_secs(args.verify_timeout_secs),
            )
            .await
            .context("counting the run's rows in ClickHouse failed")?;
        report.set_stored(stored);
    }
    Ok(report)
}

/// A site name no other run uses, so that its rows count this run's hits only.
fn unique_site() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "loadgen-{}-{}",
        now.as_secs(),
        footfall_store::id::Id::random().as_str()[..6].to_lowercase()
    )
}
