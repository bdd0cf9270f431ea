//! The optional per-client rate limit (`FOOTFALL_RATE_LIMIT_PER_MINUTE`): how many hits a minute
//! one client may have recorded, with a burst allowance. Every event of a beacon counts as a hit.
//! The same limiter, keyed by network, bounds the new visitors one network may add a day
//! (`FOOTFALL_MAX_NEW_VISITORS_PER_NETWORK`, [`RateLimit::new_visitors`]).
//!
//! A flood from one address (a broken script in a loop, a crawler, someone inflating counts)
//! would otherwise fill the queue and the spool and skew every report. Requests past the limit
//! are answered as usual (the pixel and email marker with their GIF, a beacon with `429`) but
//! nothing of them is stored, and each is counted as `rate_limited`. Email opens fetched by a
//! mail provider's image proxy are not limited: one proxy address fetches for many readers.
//!
//! The client is the address [`crate::hit::client_ip`] worked out (behind trusted proxies, the
//! visitor's), an IPv6 client by its /64: one host usually holds a whole /64, so counting single
//! IPv6 addresses would let it rotate past any limit. The limiter is `governor`'s keyed GCRA:
//! one atomic word per client, no locks on the hot path beyond the map's shard. Clients idle
//! long enough to have a full allowance again are dropped every [`PRUNE_INTERVAL`] (on the
//! blocking pool: it walks and locks the whole map), so memory follows the number of recently
//! active clients.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::watch;

/// How often clients with a full allowance are forgotten.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// What an address is counted under.
    key: fn(IpAddr) -> IpAddr,
}

impl RateLimit {
    /// `per_minute` hits a minute per client, up to `burst` at once.
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            key: client_key,
        }
    }

    /// `per_day` new visitors a day per network (the /24 or /48 that reports count networks
    /// by), all of them at once if they come at once.
    pub fn new_visitors(per_day: NonZeroU32) -> Self {
        let period = Duration::from_secs(86_400) / per_day.get();
        let quota = Quota::with_period(period)
            .expect("a day over at most 2^32 is never zero")
            .allow_burst(per_day);
        Self {
            limiter: RateLimiter::keyed(quota),
            key: network_key,
        }
    }

    /// Whether `hits` more hits of `ip` may be recorded now; counts them if so. More hits than
    /// the burst are never allowed at once.
    pub fn allows(&self, ip: IpAddr, hits: NonZeroU32) -> bool {
        matches!(self.limiter.check_key_n(&(self.key)(ip), hits), Ok(Ok(())))
    }

    /// Clients currently tracked.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets clients with a full allowance again.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Calls [`RateLimit::prune`] every [`PRUNE_INTERVAL`] until `stop` turns true.
    pub async fn prune_regularly(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            let limit = self.clone();
            let _ = tokio::task::spawn_blocking(move || limit.prune()).await;
        }
    }
}

/// The key a client is counted under: an IPv4 address itself, an IPv6 address's /64.
fn client_key(ip: IpAddr) -> IpAddr {
    masked(ip, 32, 64)
}

/// The key a network is counted under: an IPv4 /24, an IPv6 /48 (as `ip_prefix`).
fn network_key(ip: IpAddr) -> IpAddr {
    masked(ip, 24, 48)
}

fn masked(ip: IpAddr, v4_bits: u32, v6_bits: u32) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6) & (u128::MAX << (128 - v6_bits)),
        )),
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & (u32::MAX << (32 - v4_bits)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: NonZeroU32 = NonZeroU32::MIN;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn limit(per_minute: u32, burst: u32) -> RateLimit {
        RateLimit::new(
            NonZeroU32::new(per_minute).unwrap(),
            NonZeroU32::new(burst).unwrap(),
        )
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_go_on() {
        // One a minute: nothing is replenished while the test runs.
        let limit = limit(1, 3);
        let a = ip("203.0.113.1");
        let allowed: Vec<bool> = (0..5).map(|_| limit.allows(a, ONE)).collect();
        assert_eq!(allowed, [true, true, true, false, false]);
        assert!(
            limit.allows(ip("203.0.113.2"), ONE),
            "another client has its own allowance"
        );
        assert!(
            limit.allows(ip("::ffff:203.0.113.3"), ONE),
            "an IPv4-mapped address is its IPv4 client"
        );
        assert!(!limit.allows(ip("::ffff:203.0.113.1"), ONE));
    }

    #[test]
    fn several_hits_at_once_take_as_many_and_never_more_than_the_burst() {
        let limit = limit(1, 3);
        let b = ip("203.0.113.9");
        let two = NonZeroU32::new(2).unwrap();
        assert!(
            !limit.allows(b, NonZeroU32::new(4).unwrap()),
            "more than the burst"
        );
        assert!(limit.allows(b, two));
        assert!(!limit.allows(b, two), "only one is left");
        assert!(limit.allows(b, ONE));
    }

    #[test]
    fn new_visitors_are_counted_by_network_a_days_worth_at_once_at_most() {
        let cap = RateLimit::new_visitors(NonZeroU32::new(3).unwrap());
        let same_24 = [
            "203.0.113.1",
            "203.0.113.200",
            "::ffff:203.0.113.7",
            "203.0.113.9",
        ];
        let allowed: Vec<bool> = same_24.iter().map(|a| cap.allows(ip(a), ONE)).collect();
        assert_eq!(
            allowed,
            [true, true, true, false],
            "one /24, whatever the host"
        );
        assert!(
            cap.allows(ip("203.0.114.1"), ONE),
            "the next /24 is another network"
        );
        assert_eq!(
            network_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1::"),
            "an IPv6 network is its /48"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(client_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(client_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        let limit = limit(1, 2);
        assert!(limit.allows(ip("2001:db8:1:2::1"), ONE));
        assert!(limit.allows(ip("2001:db8:1:2::2"), ONE));
        assert!(
            !limit.allows(ip("2001:db8:1:2::3"), ONE),
            "rotating addresses inside one /64 does not help"
        );
        assert!(
            limit.allows(ip("2001:db8:1:3::1"), ONE),
            "the next /64 is another client"
        );
    }

    #[test]
    fn allowance_comes_back_and_idle_clients_are_forgotten() {
        // 600 a minute: one every 100 ms.
        let limit = limit(600, 1);
        let a = ip("198.51.100.7");
        assert!(limit.allows(a, ONE));
        assert!(!limit.allows(a, ONE));
        std::thread::sleep(Duration::from_millis(150));
        assert!(limit.allows(a, ONE), "one hit per 100 ms comes back");
        assert_eq!(limit.clients(), 1);
        // Two intervals on: the client's state is one of a client never seen.
        std::thread::sleep(Duration::from_millis(250));
        limit.prune();
        assert_eq!(
            limit.clients(),
            0,
            "a client with its full allowance is dropped"
        );
    }
}
