//! Command-line flags and `FOOTFALL_*` environment variables: every option is both.
//!
//! Parsing lives in the library (not the binary) so that tests start collectors with the same
//! options a user would type.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use footfall_store::config::{ClickHouseArgs, DEFAULT_DATA_DIR, RetentionArgs, SchemaArgs};

use crate::cors::AllowedOrigins;
use crate::hit::client_ip::TrustedProxies;
use crate::hit::page::KeptParams;
use crate::metrics_server::MetricsListen;

#[derive(Debug, Parser)]
#[command(
    name = "footfall-collector",
    version,
    about = "Footfall's collector: answers tracking hits and writes them to ClickHouse"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options for `serve`, the default command.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default). Applies the schema once ClickHouse answers.
    Serve(Box<ServeArgs>),
    /// Apply the ClickHouse schema and exit.
    Migrate(SchemaArgs),
    /// Print a signed email-open marker or customer link (needs FOOTFALL_SECRET).
    Sign(SignArgs),
    /// Work on the spool in the data dir.
    #[command(subcommand)]
    Spool(SpoolCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum SpoolCommand {
    /// Insert the batches ClickHouse refused for good (DATA_DIR/quarantine), once their cause is
    /// fixed; each stored batch's file is deleted, the others stay. Safe while the collector runs.
    ReplayQuarantine(ReplayArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The collector's data dir, which holds the quarantine.
    #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    #[command(subcommand)]
    pub what: SignCommand,
    /// Where the secret is looked for when --secret is not given.
    #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    /// Key for signed email-open tokens and customer links (the collector's FOOTFALL_SECRET).
    #[arg(long, env = "FOOTFALL_SECRET", hide_env_values = true, global = true)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SignCommand {
    /// Print the `/o/TOKEN.gif` path that records when this recipient opens this campaign's mail.
    Email {
        /// The mailing, as it should appear in reports.
        #[arg(long)]
        campaign: String,
        /// Who the mail goes to: an opaque subscriber or customer id rather than an address.
        #[arg(long)]
        recipient: String,
    },
    /// Print the query parameters (`cid=...&cs=...`) that link a logged-in customer's hits on
    /// one site for the next few minutes, and (on standard error) when they expire.
    Customer {
        /// The customer's id in your systems.
        #[arg(long)]
        id: String,
        /// The site (the pixel's and tracker's `site`) whose pages carry the link.
        #[arg(long)]
        site: String,
        #[command(flatten)]
        links: LinkArgs,
    },
}

/// How long a signed customer link is believed: `serve` checks it, `sign` says it.
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// Minutes after it was signed that a customer link still links a hit.
    #[arg(long, env = "FOOTFALL_CUSTOMER_LINK_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub customer_link_minutes: u32,
}

impl LinkArgs {
    pub fn max_age_secs(&self) -> i64 {
        i64::from(self.customer_link_minutes) * 60
    }
}

/// Whether hits are recorded before the page signals consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsentMode {
    /// Record unless the visitor opted out (or sends DNT / Sec-GPC).
    Implied,
    /// Record only hits that carry `consent=1`.
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    pub links: LinkArgs,

    /// Address to serve on.
    #[arg(long, env = "FOOTFALL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of `GET /metrics` (never served on the public address), or `off`.
    #[arg(
        long,
        env = "FOOTFALL_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: MetricsListen,
    /// Local state: the spool, and key material in --dev.
    #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// For a laptop: create missing keys in the data dir, drop the cookie's Secure attribute.
    #[arg(long, env = "FOOTFALL_DEV")]
    pub dev: bool,

    /// Longest time a hit waits before its batch is written, in milliseconds.
    #[arg(long, env = "FOOTFALL_FLUSH_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub flush_interval_ms: u64,
    /// Most events in one batch, and so in one insert while there is no backlog (at the default
    /// flush interval a batch is cut by time below 50,000 hits/s: about one insert a second,
    /// which ClickHouse's cost per insert favours).
    #[arg(long, env = "FOOTFALL_BATCH_ROWS", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_rows: u64,
    /// Longest a first attempt at an insert into ClickHouse may take, in milliseconds; one that
    /// takes longer is sent again with twice the time, up to 10 minutes, until it is stored.
    #[arg(long, env = "FOOTFALL_INSERT_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub insert_timeout_ms: u64,
    /// Linux nice value ClickHouse is asked to run an insert at while the spool is caught up
    /// (the insert holds one batch and is a first attempt), so that on a host shared with
    /// ClickHouse the pixel's requests come first; inserts of a backlog, and retries, run at
    /// ClickHouse's own priority. 0 asks for nothing. ClickHouse applies it only with the
    /// CAP_SYS_NICE capability (docker-compose.yml gives it).
    #[arg(long, env = "FOOTFALL_INSERT_NICE", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub insert_nice: u8,
    /// Most events held in memory waiting for the spool; past it hits are refused (and counted).
    #[arg(long, env = "FOOTFALL_QUEUE_CAPACITY", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub queue_capacity: u64,
    /// Most bytes of events acknowledged and not yet durable (as their spool records, a few
    /// hundred bytes each: queued, or in the spool's buffer until its next fsync); past it hits
    /// are refused (and counted). Bounds the memory a stalled disk can take.
    #[arg(long, env = "FOOTFALL_QUEUE_MAX_BYTES", default_value_t = 8 << 20, value_parser = clap::value_parser!(u64).range((1 << 20)..=(1 << 36)))]
    pub queue_max_bytes: u64,
    /// On shutdown, how long to keep retrying ClickHouse before leaving batches in the spool, in seconds.
    #[arg(long, env = "FOOTFALL_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// How often the spool is made durable, in milliseconds: the most a crash can cost.
    #[arg(long, env = "FOOTFALL_SPOOL_FSYNC_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub spool_fsync_ms: u64,
    /// Most bytes the spool may hold while ClickHouse is unreachable; past it hits are refused.
    #[arg(long, env = "FOOTFALL_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,

    /// Longest a client may take to send a request's head, and longest a keep-alive connection
    /// may sit idle, in milliseconds: slow or idle clients cannot hold connections forever.
    #[arg(long, env = "FOOTFALL_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,
    /// How long a keep-alive connection may sit idle before its HTTP buffers (about 16 KiB) are
    /// freed, in milliseconds; it stays open, and its next request is answered as before. 0 frees
    /// them after every answer (least memory, more work per request).
    #[arg(long, env = "FOOTFALL_IDLE_RELEASE_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub idle_release_ms: u64,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    #[arg(long, env = "FOOTFALL_MAX_HEADER_BYTES", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1024..=1_048_576))]
    pub max_header_bytes: u64,
    /// Most connections served at once; past it new connections wait in the listen backlog.
    #[arg(long, env = "FOOTFALL_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Hits a minute one client (an IPv4 address, an IPv6 /64) may have recorded; past it they
    /// are answered but not stored. Off unless set.
    #[arg(long, env = "FOOTFALL_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<NonZeroU32>,
    /// Hits one client may send at once before the per-minute rate applies (default: the rate).
    #[arg(
        long,
        env = "FOOTFALL_RATE_LIMIT_BURST",
        requires = "rate_limit_per_minute"
    )]
    pub rate_limit_burst: Option<NonZeroU32>,
    /// New visitors (hits without a visitor cookie) one network (an IPv4 /24, an IPv6 /48) may
    /// add to the counts in a day; past it they are stored as not counted, like bots, and get
    /// no cookie. Fake visitors from one machine cannot inflate a report past it. 0: no cap.
    /// Default 1000; with --dev (where every hit comes from one machine) 0.
    #[arg(long, env = "FOOTFALL_MAX_NEW_VISITORS_PER_NETWORK")]
    pub max_new_visitors_per_network: Option<u32>,

    /// CIDRs whose X-Forwarded-For / Forwarded headers are believed (comma-separated).
    #[arg(long, env = "FOOTFALL_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Query parameters stored page and referrer URLs keep besides the UTM tags, like
    /// `q,page` (comma-separated); every other parameter is dropped before storage.
    #[arg(long, env = "FOOTFALL_KEEP_QUERY_PARAMS", default_value = "")]
    pub keep_query_params: KeptParams,

    /// Origins whose pages may send beacons to /e, like https://www.example.com (comma-separated).
    /// --dev allows any origin.
    #[arg(long, env = "FOOTFALL_ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: AllowedOrigins,

    /// MaxMind DB file (GeoIP2/GeoLite2 City or Country) for the country, region and city
    /// columns; reloaded when it changes. Without it those columns stay empty.
    #[arg(long, env = "FOOTFALL_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,

    /// Key for signed email-open tokens and customer links (at least 32 random bytes, like the
    /// output of `openssl rand -base64 48`).
    #[arg(long, env = "FOOTFALL_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Public key that seals client IPs: the key text, or a file holding it.
    #[arg(long, env = "FOOTFALL_IP_PUBLIC_KEY")]
    pub ip_public_key: Option<String>,

    /// Days the visitor cookie lives.
    #[arg(long, env = "FOOTFALL_COOKIE_MAX_AGE_DAYS", default_value_t = 395)]
    pub cookie_max_age_days: u32,
    /// SameSite attribute of the visitor cookie.
    #[arg(
        long,
        env = "FOOTFALL_COOKIE_SAME_SITE",
        value_enum,
        default_value = "lax"
    )]
    pub cookie_same_site: SameSite,
    /// Domain attribute of the visitor cookie (none: the collector's host only).
    #[arg(long, env = "FOOTFALL_COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,

    /// Record nothing of browsers that send `DNT: 1` (true or false).
    #[arg(long, env = "FOOTFALL_HONOR_DNT", default_value_t = true, action = ArgAction::Set)]
    pub honor_dnt: bool,
    /// Record nothing of browsers that send `Sec-GPC: 1` (true or false).
    #[arg(long, env = "FOOTFALL_HONOR_GPC", default_value_t = true, action = ArgAction::Set)]
    pub honor_gpc: bool,
    /// `required`: record a page hit only if it carries `consent=1`.
    #[arg(long, env = "FOOTFALL_CONSENT", value_enum, default_value = "implied")]
    pub consent: ConsentMode,
}

impl ServeArgs {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let cli = Cli::try_parse_from(["footfall-collector"]).unwrap();
        assert!(cli.command.is_none(), "serve is the default");
        let s = cli.serve;
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.metrics_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(s.clickhouse.clickhouse_database, "footfall");
        assert_eq!(s.flush_interval_ms, 1000);
        assert_eq!(s.retention.retention_days, 395);
        assert!(!s.trusted_proxies.contains("10.0.0.1".parse().unwrap()));
        assert!(s.geoip_db.is_none());
        assert!(
            s.honor_dnt && s.honor_gpc,
            "DNT and GPC are honoured by default"
        );
        assert_eq!(s.consent, ConsentMode::Implied);
    }

    #[test]
    fn privacy_switches_and_sign_parse() {
        let cli = Cli::try_parse_from([
            "footfall-collector",
            "--honor-dnt",
            "false",
            "--honor-gpc",
            "false",
            "--consent",
            "required",
        ])
        .unwrap();
        assert!(!cli.serve.honor_dnt && !cli.serve.honor_gpc);
        assert_eq!(cli.serve.consent, ConsentMode::Required);
        let cli = Cli::try_parse_from([
            "footfall-collector",
            "sign",
            "email",
            "--campaign",
            "c",
            "--recipient",
            "r",
            "--data-dir",
            "d",
        ])
        .unwrap();
        let Some(Command::Sign(sign)) = cli.command else {
            panic!("sign")
        };
        assert!(
            matches!(sign.what, SignCommand::Email { campaign, recipient } if campaign == "c" && recipient == "r")
        );
        assert_eq!(sign.data_dir, PathBuf::from("d"));
        assert!(
            Cli::try_parse_from(["footfall-collector", "sign", "customer", "--id", "c"]).is_err(),
            "--site is required"
        );
        let cli = Cli::try_parse_from([
            "footfall-collector",
            "sign",
            "customer",
            "--id",
            "c",
            "--site",
            "shop",
        ])
        .unwrap();
        let Some(Command::Sign(sign)) = cli.command else {
            panic!("sign")
        };
        assert!(
            matches!(sign.what, SignCommand::Customer { links, .. } if links.max_age_secs() == 15 * 60),
            "links live 15 minutes by default"
        );
    }

    #[test]
    fn flags_parse_for_serve_and_migrate() {
        let cli = Cli::try_parse_from([
            "footfall-collector",
            "serve",
            "--dev",
            "--trusted-proxies",
            "10.0.0.0/8",
        ])
        .unwrap();
        let Some(Command::Serve(s)) = cli.command else {
            panic!("serve")
        };
        assert!(s.dev);
        assert!(s.trusted_proxies.contains("10.9.9.9".parse().unwrap()));
        let cli = Cli::try_parse_from([
            "footfall-collector",
            "migrate",
            "--clickhouse-database",
            "x",
            "--retention-days",
            "30",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Migrate(c))
                if c.clickhouse.clickhouse_database == "x" && c.retention.retention_days == 30
        ));
        assert!(Cli::try_parse_from(["footfall-collector", "--trusted-proxies", "bogus"]).is_err());
        assert!(
            Cli::try_parse_from([
                "footfall-collector",
                "--allowed-origins",
                "https://a.example,https://b.example"
            ])
            .is_ok()
        );
        assert!(
            Cli::try_parse_from(["footfall-collector", "--allowed-origins", "a.example/path"])
                .is_err()
        );
    }
}
