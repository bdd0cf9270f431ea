//! The optional per-client rate limit (`FOOTFALL_RATE_LIMIT_PER_IP`): how many hits a second one
//! client may have recorded, with a burst allowance.
//!
//! A flood from one address (a broken script in a loop, a crawler, someone inflating counts)
//! would otherwise fill the queue and the spool and skew every report. Requests past the limit
//! are answered as usual (the pixel and email marker with their GIF, a beacon with `429`) but
//! nothing of them is stored, and each is counted as `rate_limited`.
//!
//! The client is the address [`crate::hit::client_ip`] worked out (behind trusted proxies, the
//! visitor's), an IPv6 client by its /64: one host usually holds a whole /64, so counting single
//! IPv6 addresses would let it rotate past any limit. The limiter is `governor`'s keyed GCRA:
//! one atomic word per client, no locks on the hot path beyond the map's shard. Clients idle
//! long enough to have a full allowance again are dropped every [`PRUNE_INTERVAL`], so memory
//! follows the number of recently active clients.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::watch;

/// How often clients with a full allowance are forgotten.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimit {
    /// `per_second` hits a second per client, up to `burst` at once.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    /// Whether one more hit of `ip` may be recorded now; counts it if so.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.limiter.check_key(&client_key(ip)).is_ok()
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
                _ = ticks.tick() => self.prune(),
                _ = stop.changed() => return,
            }
        }
    }
}

/// The key a client is counted under: an IPv4 address itself, an IPv6 address's /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit::new(
            NonZeroU32::new(per_second).unwrap(),
            NonZeroU32::new(burst).unwrap(),
        )
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_go_on() {
        // One a minute: nothing is replenished while the test runs.
        let limit = RateLimit {
            limiter: RateLimiter::keyed(
                Quota::per_minute(NonZeroU32::new(1).unwrap())
                    .allow_burst(NonZeroU32::new(3).unwrap()),
            ),
        };
        let a = ip("203.0.113.1");
        let allowed: Vec<bool> = (0..5).map(|_| limit.allows(a)).collect();
        assert_eq!(allowed, [true, true, true, false, false]);
        assert!(
            limit.allows(ip("203.0.113.2")),
            "another client has its own allowance"
        );
        assert!(
            limit.allows(ip("::ffff:203.0.113.3")),
            "an IPv4-mapped address is its IPv4 client"
        );
        assert!(!limit.allows(ip("::ffff:203.0.113.1")));
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
        assert!(limit.allows(ip("2001:db8:1:2::1")));
        assert!(limit.allows(ip("2001:db8:1:2::2")));
        assert!(
            !limit.allows(ip("2001:db8:1:2::3")),
            "rotating addresses inside one /64 does not help"
        );
        assert!(
            limit.allows(ip("2001:db8:1:3::1")),
            "the next /64 is another client"
        );
    }

    #[test]
    fn allowance_comes_back_and_idle_clients_are_forgotten() {
        let limit = limit(10, 1);
        let a = ip("198.51.100.7");
        assert!(limit.allows(a));
        assert!(!limit.allows(a));
        std::thread::sleep(Duration::from_millis(150));
        assert!(limit.allows(a), "one hit per 100 ms comes back");
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
