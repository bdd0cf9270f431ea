//! The ClickHouse options both programs take, as command-line flags and `FOOTFALL_*` variables.
//!
//! One definition, so that the collector and the aggregator cannot drift apart on a flag's name,
//! its variable or its default.

use clap::Args;
use clickhouse::Compression;

use crate::cluster::{BadClusterName, Layout};

/// Where local state lives unless FOOTFALL_DATA_DIR says otherwise (keys in --dev, the spool).
pub const DEFAULT_DATA_DIR: &str = "./footfall-data";

#[derive(Debug, Clone, Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface.
    #[arg(
        long,
        env = "FOOTFALL_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub clickhouse_url: String,
    /// Database that holds Footfall's tables.
    #[arg(long, env = "FOOTFALL_CLICKHOUSE_DATABASE", default_value = "footfall")]
    pub clickhouse_database: String,
    #[arg(long, env = "FOOTFALL_CLICKHOUSE_USER", default_value = "default")]
    pub clickhouse_user: String,
    #[arg(
        long,
        env = "FOOTFALL_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub clickhouse_password: String,
    /// A cluster of the servers' `remote_servers`: the schema becomes per-shard local tables
    /// behind Distributed tables of the usual names. Unset: one server.
    #[arg(long, env = "FOOTFALL_CLICKHOUSE_CLUSTER", value_parser = cluster_name)]
    pub clickhouse_cluster: Option<String>,
    /// The cluster has ClickHouse Keeper: tables are Replicated and DDL runs `ON CLUSTER`.
    /// Without it every shard holds one copy, and migrations run on every node.
    #[arg(
        long,
        env = "FOOTFALL_CLICKHOUSE_REPLICATED",
        requires = "clickhouse_cluster"
    )]
    pub clickhouse_replicated: bool,
}

/// How long personal data is kept: for the commands that apply the schema (whose TTLs follow
/// it) or enforce it.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Days raw events, sealed IPs and identities are kept.
    #[arg(long, env = "FOOTFALL_RETENTION_DAYS", default_value_t = 395, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub retention_days: u32,
}

/// Where the schema lives and the retention its TTLs follow: both programs' `migrate`, and the
/// aggregator's `retention`.
#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

impl ClickHouseArgs {
    /// A client for Footfall's database (RowBinary over HTTP, LZ4-compressed unless the server
    /// is on this host: [`compression`]).
    pub fn client(&self) -> clickhouse::Client {
        self.server_client()
            .with_database(&self.clickhouse_database)
    }

    /// A client not bound to a database, for creating it.
    pub fn server_client(&self) -> clickhouse::Client {
        let client = clickhouse::Client::default()
            .with_url(&self.clickhouse_url)
            .with_user(&self.clickhouse_user)
            .with_password(&self.clickhouse_password)
            .with_compression(compression(&self.clickhouse_url));
        self.layout().configure(client)
    }

    /// One server, or the cluster FOOTFALL_CLICKHOUSE_CLUSTER names.
    pub fn layout(&self) -> Layout {
        match &self.clickhouse_cluster {
            None => Layout::default(),
            Some(name) => Layout::cluster(name, self.clickhouse_replicated, &self.clickhouse_url)
                .expect("the cluster name is checked as the option is parsed"),
        }
    }
}

/// LZ4 over a network, none to a server on this host: over loopback the kernel copies an
/// uncompressed body for less than compressing it costs the sender and decompressing it the
/// server (an insert's LZ4 was 2.4k of the collector's 31k instructions per hit, and ClickHouse
/// shares the host's cores; BENCHMARKS.md, what limits the collector now).
pub(crate) fn compression(url: &str) -> Compression {
    if on_this_host(url) {
        Compression::None
    } else {
        Compression::Lz4
    }
}

/// Whether `url`'s host is a loopback address or `localhost` (read by `http::Uri`, as the
/// client reads it).
fn on_this_host(url: &str) -> bool {
    let uri = url.parse::<http::Uri>();
    let Some(host) = uri.as_ref().ok().and_then(http::Uri::host) else {
        return false;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|bracketed| bracketed.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn cluster_name(name: &str) -> Result<String, BadClusterName> {
    Layout::cluster(name, false, "").map(|_| name.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{ClickHouseArgs, on_this_host};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    }

    fn parse(args: &[&str]) -> Result<ClickHouseArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("footfall").chain(args.iter().copied()))
            .map(|cli| cli.clickhouse)
    }

    #[test]
    fn one_server_unless_a_cluster_is_named() {
        assert!(!parse(&[]).unwrap().layout().is_cluster());
        let args = parse(&["--clickhouse-cluster", "main", "--clickhouse-replicated"]).unwrap();
        assert_eq!(args.layout().cluster_name(), Some("main"));
        let alter = "ALTER TABLE {db}.t ADD COLUMN c UInt8";
        let keeper = &args.layout().render(alter, "d").unwrap()[0].1;
        assert!(keeper.contains(" ON CLUSTER 'main' "), "{keeper}");
        let args = parse(&["--clickhouse-cluster", "main"]).unwrap();
        assert!(
            !args.layout().render(alter, "d").unwrap()[0]
                .1
                .contains("ON CLUSTER")
        );
        // Keeper without a cluster, and names that would not be safe in SQL, are refused.
        assert!(parse(&["--clickhouse-replicated"]).is_err());
        assert!(parse(&["--clickhouse-cluster", "x'); DROP"]).is_err());
    }

    #[test]
    fn compression_is_left_off_only_for_a_server_on_this_host() {
        for url in [
            "http://127.0.0.1:8123",
            "http://127.5.0.1",
            "http://localhost:8123/",
            "https://LOCALHOST",
            "http://[::1]:8123",
            "http://user:secret@127.0.0.1:8123",
        ] {
            assert!(on_this_host(url), "{url}");
        }
        for url in [
            "http://clickhouse:8123",
            "http://10.0.0.7:8123",
            "http://[2001:db8::1]:8123",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
            "http://127.0.0.1@clickhouse:8123",
        ] {
            assert!(!on_this_host(url), "{url}");
        }
    }
}
