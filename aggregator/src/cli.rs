//! Command-line flags and `FOOTFALL_*` environment variables: every option is both.
//!
//! One subcommand per module of this crate.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::audit::Action;
use crate::budget::{Budget, Period};
use crate::noise::NoiseKey;
use crate::report::{ReportError, Rules};
use footfall_store::config::{ClickHouseArgs, DEFAULT_DATA_DIR, RetentionArgs, SchemaArgs};

#[derive(Debug, Parser)]
#[command(
    name = "footfall-aggregator",
    version,
    about = "Footfall's aggregator: anonymous reports (export, serve), key generation, data subject requests, retention"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new IP-sealing key pair (ip-seal.key, ip-seal.pub) into the data dir.
    Keygen(KeygenArgs),
    /// A data subject's rights: a copy of their data, or its erasure.
    Subject(SubjectArgs),
    /// Delete now every row older than the retention period (ClickHouse TTLs do it eventually).
    Retention(SchemaArgs),
    /// Apply the whole schema (as the collector does), fill the rollups for events stored before
    /// them, and compute the visits of today and yesterday.
    Migrate(SchemaArgs),
    /// Recompute the rollups of a range of days from raw events (after an erasure, or a change
    /// of the rules).
    Backfill(BackfillArgs),
    /// Write an anonymous report as CSV.
    Export(ReportArgs),
    /// Serve the reports over HTTP to holders of API tokens.
    Serve(ServeArgs),
    /// Create, list and revoke API tokens.
    Token(TokenArgs),
    /// List the audit: exports, subject requests and refused requests, newest first.
    Audit(AuditArgs),
    /// Add, list and remove the goals of a site.
    Goal(GoalArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GoalArgs {
    #[command(subcommand)]
    pub action: GoalAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum GoalAction {
    /// Add a goal (or replace the one of that name): a page pattern or a custom event.
    Add {
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: String,
        /// A path pattern: `*` is any run of characters but `/`, `**` any run at all.
        #[arg(long)]
        page: Option<String>,
        /// A custom event's name.
        #[arg(long)]
        event: Option<String>,
        /// KEY=VALUE: only events with this property value count.
        #[arg(long)]
        property: Option<String>,
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
    /// List the goals (of one site, or of all).
    List {
        #[arg(long)]
        site: Option<String>,
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
    /// Remove a goal.
    Remove {
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// First day, YYYY-MM-DD (UTC).
    #[arg(long, env = "FOOTFALL_FROM")]
    pub from: String,
    /// Last day, YYYY-MM-DD (UTC), included.
    #[arg(long, env = "FOOTFALL_TO")]
    pub to: String,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// How rows are anonymised; shared by `export` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct PrivacyArgs {
    /// Leave out every row that stands for fewer distinct visitors (at least 2).
    #[arg(long, env = "FOOTFALL_MIN_VISITORS", default_value_t = crate::report::DEFAULT_MIN_VISITORS)]
    pub min_visitors: u32,
    /// Leave out every row whose visitors come from fewer distinct networks (/24, /48); default:
    /// the same as --min-visitors, so that visitors made up on one machine cannot unlock a row.
    #[arg(long, env = "FOOTFALL_MIN_NETWORKS")]
    pub min_networks: Option<u32>,
    /// Differential privacy: discrete Laplace noise with this ε per row (a multiple of 0.001,
    /// at most 10).
    #[arg(long, env = "FOOTFALL_EPSILON")]
    pub epsilon: Option<f64>,
    /// ε each actor (API token, or OS user at the command line) may spend per period.
    #[arg(long, env = "FOOTFALL_DP_BUDGET", default_value_t = 10.0)]
    pub dp_budget: f64,
    /// The calendar period (UTC) over which the budget is spent.
    #[arg(long, env = "FOOTFALL_DP_BUDGET_PERIOD", value_enum, default_value_t = Period::Month)]
    pub dp_budget_period: Period,
    /// File of the secret that fixes the noise (created when missing; default:
    /// dp-noise.key in the data dir).
    #[arg(long, env = "FOOTFALL_DP_KEY")]
    pub dp_key: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
}

impl PrivacyArgs {
    /// The rules these options set; the noise key is read (or created) only with `--epsilon`.
    pub fn rules(&self) -> Result<Rules, ReportError> {
        let limit = self.dp_budget * 1000.0;
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(ReportError::BadEpsilon);
        }
        let budget = Budget {
            limit_thousandths: limit.round() as u64,
            period: self.dp_budget_period,
        };
        let key_path = self
            .dp_key
            .clone()
            .unwrap_or_else(|| self.data.data_dir.join("dp-noise.key"));
        Rules::new(
            self.min_visitors,
            self.min_networks.unwrap_or(self.min_visitors),
            self.epsilon,
            || NoiseKey::load_or_create(&key_path),
            budget,
        )
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// daily, pages, referrers, countries, devices, campaigns, email, events, properties,
    /// outbound, downloads, goals or funnel.
    #[arg(long, env = "FOOTFALL_REPORT")]
    pub report: String,
    /// First day, YYYY-MM-DD (UTC).
    #[arg(long, env = "FOOTFALL_FROM")]
    pub from: String,
    /// Last day, YYYY-MM-DD (UTC), included.
    #[arg(long, env = "FOOTFALL_TO")]
    pub to: String,
    /// Only this site (default: every site, one row per site and key).
    #[arg(long, env = "FOOTFALL_SITE")]
    pub site: Option<String>,
    /// The funnel's steps, comma-separated: path patterns and `event:NAME`. Kept as the
    /// site's funnel; without it, the funnel kept last.
    #[arg(long, env = "FOOTFALL_STEPS")]
    pub steps: Option<String>,
    #[command(flatten)]
    pub privacy: PrivacyArgs,
    /// Write the CSV here instead of stdout.
    #[arg(long, env = "FOOTFALL_OUTPUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to serve the dashboard and report API on (the collector's is FOOTFALL_LISTEN).
    #[arg(
        long,
        env = "FOOTFALL_AGGREGATOR_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub privacy: PrivacyArgs,
    /// Seconds between recomputations of today's and yesterday's visit rollups (0: never).
    #[arg(long, env = "FOOTFALL_REFRESH_SECS", default_value_t = 60)]
    pub refresh_secs: u64,
    /// Laptop mode: rows are shown from a single visitor, under a banner that says so. Never on
    /// real data.
    #[arg(long, env = "FOOTFALL_DEV")]
    pub dev: bool,
    /// Most connections served at once; more wait in the listen backlog.
    #[arg(
        long,
        env = "FOOTFALL_AGGREGATOR_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    pub max_connections: usize,
    /// Largest request head (request line and headers); larger ones get 431.
    #[arg(
        long,
        env = "FOOTFALL_AGGREGATOR_MAX_HEADER_BYTES",
        default_value_t = 16384
    )]
    pub max_header_bytes: usize,
    /// Longest a client may take to send a request head, or stay idle between requests.
    #[arg(
        long,
        env = "FOOTFALL_AGGREGATOR_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it once (its last word on the last line).
    Create {
        /// Who holds it; shown in the audit.
        #[arg(long)]
        name: String,
        /// Reports it may read (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        reports: Vec<String>,
        /// Sites it may read (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        sites: Vec<String>,
        /// Only ranges of whole calendar months (first to last day of a month, or of several).
        #[arg(long)]
        months_only: bool,
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
    /// List active tokens (names and scopes; tokens themselves are not kept).
    List(ClickHouseArgs),
    /// Revoke a token by name.
    Revoke {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// How many of the latest entries to list.
    #[arg(long, env = "FOOTFALL_AUDIT_LIMIT", default_value_t = 100)]
    pub limit: u64,
    /// Only this actor (a token's name, or cli:USER).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this kind of entry.
    #[arg(long, value_enum)]
    pub action: Option<Action>,
    /// Only entries from this day on, YYYY-MM-DD (UTC).
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Local state: where key files are written and looked for.
    #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SubjectArgs {
    #[command(subcommand)]
    pub action: SubjectAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SubjectAction {
    /// Print as JSON every record held about the person, IPs unsealed.
    Export(ExportArgs),
    /// Delete every record of what the person did until now, and wait until ClickHouse has;
    /// their hits still in a collector's spool are dropped when it sends them.
    Erase(EraseArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub who: Who,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
    /// File holding the private key that unseals IPs (default: ip-seal.key in the data dir).
    #[arg(long, env = "FOOTFALL_IP_PRIVATE_KEY")]
    pub ip_private_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub who: Who,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// Whose data: a visitor (the `ff_id` cookie value) or a customer (with every visitor id linked
/// to them, and the email opens addressed to them).
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct Who {
    /// The visitor id: the value of the ff_id cookie.
    #[arg(long)]
    pub visitor: Option<String>,
    /// The customer id, as in signed customer links and email recipients.
    #[arg(long)]
    pub customer: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_options_parse() {
        let cli = Cli::try_parse_from([
            "footfall-aggregator",
            "subject",
            "export",
            "--visitor",
            "v",
            "--data-dir",
            "d",
        ])
        .unwrap();
        let Command::Subject(SubjectArgs {
            action: SubjectAction::Export(e),
        }) = cli.command
        else {
            panic!("export")
        };
        assert!(matches!(e.who, Who { visitor: Some(v), customer: None } if v == "v"));
        assert_eq!(e.data.data_dir, PathBuf::from("d"));
        assert_eq!(e.clickhouse.clickhouse_database, "footfall");
        assert!(e.ip_private_key.is_none());
        let cli =
            Cli::try_parse_from(["footfall-aggregator", "retention", "--retention-days", "30"])
                .unwrap();
        assert!(matches!(cli.command, Command::Retention(c) if c.retention.retention_days == 30));
        assert!(
            Cli::try_parse_from([
                "footfall-aggregator",
                "token",
                "list",
                "--retention-days",
                "30"
            ])
            .is_err(),
            "commands that neither migrate nor purge take no retention"
        );
        assert!(Cli::try_parse_from(["footfall-aggregator", "keygen"]).is_ok());
    }

    #[test]
    fn export_serve_and_token_options_parse() {
        let cli = Cli::try_parse_from([
            "footfall-aggregator",
            "export",
            "--report",
            "pages",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "--epsilon",
            "0.5",
        ])
        .unwrap();
        let Command::Export(e) = cli.command else {
            panic!("export")
        };
        assert_eq!(e.privacy.min_visitors, 10);
        assert_eq!(e.privacy.epsilon, Some(0.5));
        let cli = Cli::try_parse_from(["footfall-aggregator", "serve"]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        assert_eq!(s.listen, "127.0.0.1:8090".parse().unwrap());
        let cli = Cli::try_parse_from([
            "footfall-aggregator",
            "token",
            "create",
            "--name",
            "agency",
            "--reports",
            "pages,daily",
        ])
        .unwrap();
        let Command::Token(TokenArgs {
            action: TokenAction::Create { reports, sites, .. },
        }) = cli.command
        else {
            panic!("token create")
        };
        assert_eq!(reports, ["pages", "daily"]);
        assert!(sites.is_empty());
    }

    #[test]
    fn a_subject_is_exactly_one_visitor_or_customer() {
        assert!(Cli::try_parse_from(["footfall-aggregator", "subject", "erase"]).is_err());
        assert!(
            Cli::try_parse_from([
                "footfall-aggregator",
                "subject",
                "erase",
                "--visitor",
                "v",
                "--customer",
                "c"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["footfall-aggregator", "subject", "erase", "--customer", "c"])
                .is_ok()
        );
    }
}
