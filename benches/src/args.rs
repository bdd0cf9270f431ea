//! `footfall-loadgen`'s command line, and the checks that keep a run bounded and on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use footfall_store::config::ClickHouseArgs;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "footfall-loadgen",
    version,
    about = "Drives a running Footfall collector with realistic pixel (and beacon) traffic over \
             loopback HTTP/1.1 keep-alive, then checks in ClickHouse that no acknowledged hit was lost"
)]
pub struct Args {
    /// Collector to load (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub target: SocketAddr,
    /// Keep-alive connections, each sending one request at a time.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Longest the load runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Most requests sent in all; the run stops at whichever bound comes first.
    #[arg(long, default_value_t = 50_000_000)]
    pub max_requests: u64,
    /// Open loop: requests per second in all, each timed from its intended send time. Without
    /// it, closed loop: every connection sends its next request as soon as the last is answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Distinct returning visitors; each keeps the `ff_id` it was given and sends it back.
    #[arg(long, default_value_t = 10_000)]
    pub visitors: u32,
    /// Share of hits from first-time visitors (no cookie, never seen again), 0 to 1.
    #[arg(long, default_value_t = 0.2)]
    pub new_visitor_share: f64,
    /// Distinct pages of the site.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pages: u32,
    /// Distinct external referrers (search engines, social, blogs); a share of hits has none.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub referrers: u32,
    /// Share of hits sent as `POST /e` beacon events instead of pixel hits, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub beacon_share: f64,
    /// The `site` of every hit; unique per run by default, so its rows can be counted.
    #[arg(long)]
    pub site: Option<String>,
    /// Seed of the traffic's random choices.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Threads of the load generator (1 keeps it on one core).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,

    /// Skip the ClickHouse check (for a target that stores nothing, such as nginx).
    #[arg(long)]
    pub no_verify: bool,
    /// ClickHouse the collector writes to (loopback only).
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Longest to wait for the collector to write every acknowledged hit (its flush interval,
    /// retries included), in seconds.
    #[arg(long, default_value_t = 30)]
    pub verify_timeout_secs: u64,

    /// Also write the result as JSON to this file (`-` for stdout).
    #[arg(long)]
    pub json: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgsError {
    #[error("--target {0} is not a loopback address: footfall-loadgen only loads this machine")]
    NotLoopback(SocketAddr),
    #[error("--clickhouse-url must be http://127.0.0.1:PORT or http://localhost:PORT")]
    ClickHouseNotLoopback,
    #[error("--{0} must be between 0 and 1")]
    NotAShare(&'static str),
    #[error("--duration-secs must be more than 0 and at most one hour")]
    BadDuration,
    #[error("--rate must be more than 0")]
    BadRate,
    #[error("--site must be 1 to 128 characters of letters, digits and .-_:")]
    BadSite,
}

impl Args {
    /// Rejects what would load another machine or never stop.
    pub fn check(&self) -> Result<(), ArgsError> {
        if !self.target.ip().is_loopback() {
            return Err(ArgsError::NotLoopback(self.target));
        }
        if !self.no_verify && !is_loopback_url(&self.clickhouse.clickhouse_url) {
            return Err(ArgsError::ClickHouseNotLoopback);
        }
        for (name, share) in [
            ("new-visitor-share", self.new_visitor_share),
            ("beacon-share", self.beacon_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(ArgsError::NotAShare(name));
            }
        }
        if !(self.duration_secs > 0.0 && self.duration_secs <= 3600.0) {
            return Err(ArgsError::BadDuration);
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(ArgsError::BadRate);
        }
        if self
            .site
            .as_deref()
            .is_some_and(|s| !footfall_store::site::valid_site(s))
        {
            return Err(ArgsError::BadSite);
        }
        Ok(())
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }
}

/// Whether `url` is plain HTTP to this machine.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    uri.scheme_str() == Some("http")
        && uri.host().is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Args {
        let mut argv = vec!["footfall-loadgen"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn defaults_are_a_bounded_closed_loop_pixel_run() {
        let a = parse(&[]);
        assert_eq!(a.check(), Ok(()));
        assert_eq!(a.rate, None);
        assert_eq!(a.beacon_share, 0.0);
        assert_eq!(a.duration(), Duration::from_secs(10));
        assert!(a.max_requests > 0);
    }

    #[test]
    fn open_loop_and_mix_options_parse() {
        let a = parse(&[
            "--rate",
            "20000",
            "--connections",
            "8",
            "--beacon-share",
            "0.3",
            "--site",
            "bench.example",
            "--no-verify",
        ]);
        assert_eq!(a.check(), Ok(()));
        assert_eq!(a.rate, Some(20_000.0));
        assert_eq!(a.connections, 8);
    }

    #[test]
    fn only_loopback_and_bounded_runs_are_accepted() {
        assert_eq!(
            parse(&["--target", "192.0.2.1:80"]).check(),
            Err(ArgsError::NotLoopback("192.0.2.1:80".parse().unwrap()))
        );
        assert_eq!(
            parse(&["--clickhouse-url", "http://clickhouse.example:8123"]).check(),
            Err(ArgsError::ClickHouseNotLoopback)
        );
        assert_eq!(
            parse(&[
                "--clickhouse-url",
                "http://clickhouse.example:8123",
                "--no-verify"
            ])
            .check(),
            Ok(())
        );
        assert_eq!(
            parse(&["--beacon-share", "1.5"]).check(),
            Err(ArgsError::NotAShare("beacon-share"))
        );
        assert_eq!(
            parse(&["--duration-secs", "0"]).check(),
            Err(ArgsError::BadDuration)
        );
        assert_eq!(parse(&["--rate", "0"]).check(), Err(ArgsError::BadRate));
        assert_eq!(
            parse(&["--site", "no spaces"]).check(),
            Err(ArgsError::BadSite)
        );
        assert!(Args::try_parse_from(["footfall-loadgen", "--connections", "0"]).is_err());
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:8123"));
        assert!(is_loopback_url("http://localhost:8123/"));
        assert!(is_loopback_url("http://[::1]:8123"));
        assert!(!is_loopback_url("https://127.0.0.1:8123"));
        assert!(!is_loopback_url("http://10.0.0.1:8123"));
        assert!(!is_loopback_url("not a url"));
    }
}
