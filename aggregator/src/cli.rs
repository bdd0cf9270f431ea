//! Command-line flags and `FOOTFALL_*` environment variables: every option is both.
//!
//! One subcommand per module of this crate; later commands (`export`, `serve`, `token`,
//! `migrate`) are further variants of [`Command`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use footfall_collector::config::{ClickHouseArgs, DEFAULT_DATA_DIR};

#[derive(Debug, Parser)]
#[command(
    name = "footfall-aggregator",
    version,
    about = "Footfall's aggregator: key generation, data subject requests, retention"
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
    Retention(ClickHouseArgs),
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
    /// Delete every record held about the person, and wait until ClickHouse has.
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
        assert!(matches!(cli.command, Command::Retention(c) if c.retention_days == 30));
        assert!(Cli::try_parse_from(["footfall-aggregator", "keygen"]).is_ok());
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
