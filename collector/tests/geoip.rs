//! GeoIP enrichment against MaxMind databases the tests write themselves: lookups in both
//! layouts, rows with country/region/city, reloading a changed file, and refusing a bad one.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Serve, TestDb, enc, get, mmdb};
use footfall_collector::enrich::geoip::{GeoIp, Place};

fn place(country: &str, region: &str, city: &str) -> Place {
    Place {
        country: country.into(),
        region: region.into(),
        city: city.into(),
    }
}

fn city_db(path: &std::path::Path) {
    mmdb::write(
        path,
        "GeoLite2-City",
        vec![
            ("203.0.113.0/24", mmdb::city("DE", "Berlin", "Berlin")),
            (
                "198.51.100.0/25",
                mmdb::city("US", "California", "San Francisco"),
            ),
            ("2001:db8:abcd::/48", mmdb::city("JP", "Tokyo", "Shibuya")),
        ],
    );
}

#[test]
fn lookups_in_city_and_country_databases() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("city.mmdb");
    city_db(&city);
    let geoip = GeoIp::open(&city).unwrap();
    let table: &[(&str, Place)] = &[
        ("203.0.113.77", place("DE", "Berlin", "Berlin")),
        ("198.51.100.1", place("US", "California", "San Francisco")),
        ("198.51.100.200", Place::default()),
        ("2001:db8:abcd:12::77", place("JP", "Tokyo", "Shibuya")),
        ("10.1.2.3", Place::default()),
        ("127.0.0.1", Place::default()),
        ("::1", Place::default()),
    ];
    // The second round is answered from the decoded places the first one cached.
    for round in 1..=2 {
        for (ip, expected) in table {
            assert_eq!(
                &geoip.lookup(ip.parse::<IpAddr>().unwrap()),
                expected,
                "{ip}, round {round}"
            );
        }
    }

    let country = dir.path().join("country.mmdb");
    mmdb::write(
        &country,
        "GeoLite2-Country",
        vec![("203.0.113.0/24", mmdb::country("FR"))],
    );
    let geoip = GeoIp::open(&country).unwrap();
    assert_eq!(
        geoip.lookup("203.0.113.9".parse().unwrap()),
        place("FR", "", "")
    );
}

#[test]
fn a_missing_broken_or_foreign_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.mmdb");
    let error = GeoIp::open(&missing)
        .err()
        .expect("missing file")
        .to_string();
    assert!(error.contains("missing.mmdb"), "{error}");

    let broken = dir.path().join("broken.mmdb");
    std::fs::write(&broken, b"this is not a MaxMind database").unwrap();
    let error = GeoIp::open(&broken).err().expect("broken file").to_string();
    assert!(error.contains("cannot read the GeoIP database"), "{error}");

    let asn = dir.path().join("asn.mmdb");
    mmdb::write(
        &asn,
        "GeoLite2-ASN",
        vec![("203.0.113.0/24", mmdb::country("DE"))],
    );
    let error = GeoIp::open(&asn).err().expect("wrong kind").to_string();
    assert!(error.contains("'GeoLite2-ASN'"), "{error}");
}

#[tokio::test]
async fn the_collector_refuses_to_start_with_a_broken_database() {
    let db = TestDb::new();
    let broken = db.data_dir.path().join("geo.mmdb");
    std::fs::write(&broken, b"garbage").unwrap();
    let path = broken.display().to_string();
    let error = footfall_collector::server::start(db.serve_args(&["--geoip-db", &path]))
        .await
        .err()
        .expect("start fails");
    assert!(error.to_string().contains("geo.mmdb"), "{error}");
}

#[tokio::test]
async fn hits_get_their_place_and_a_new_database_edition_is_picked_up() {
    let db = TestDb::new();
    let file = db.data_dir.path().join("geo.mmdb");
    city_db(&file);
    let path = file.display().to_string();
    let collector = db
        .start(&["--trusted-proxies", "127.0.0.0/8", "--geoip-db", &path])
        .await;
    let addr = collector.local_addr();
    let hit = |ip: &'static str, page: &'static str| async move {
        let target = format!(
            "/p.gif?site=s&url={}",
            enc(&format!("https://example.com/{page}"))
        );
        assert!(
            get(addr, &target, &[("x-forwarded-for", ip)])
                .await
                .visitor_cookie()
                .is_some()
        );
    };
    hit("203.0.113.77", "a").await;
    hit("2001:db8:abcd:12::77", "b").await;
    hit("192.0.2.1", "c").await;

    // A new edition moves 203.0.113.0/24 to Austria; the collector notices without a restart.
    let next = db.data_dir.path().join("geo.mmdb.new");
    mmdb::write(
        &next,
        "GeoLite2-City",
        vec![("203.0.113.0/24", mmdb::city("AT", "Vienna", "Vienna"))],
    );
    std::fs::rename(&next, &file).unwrap();
    let mut moved = false;
    for attempt in 0..40 {
        hit("203.0.113.77", "after").await;
        let n = db
            .wait_for_count(
                "SELECT count() FROM events WHERE path = '/after'",
                attempt + 1,
            )
            .await;
        assert!(n > attempt);
        if db
            .count("SELECT count() FROM events WHERE path = '/after' AND country = 'AT'")
            .await
            > 0
        {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(moved, "the new database edition was not picked up");

    // A broken edition is refused and counted; lookups go on with the one before.
    std::fs::write(&next, b"half a download").unwrap();
    std::fs::rename(&next, &file).unwrap();
    let failed = "footfall_geoip_reload_failures_total 1";
    let mut metrics = String::new();
    for _ in 0..40 {
        metrics = common::metrics_text(&collector).await;
        if metrics.contains(failed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(metrics.contains(failed), "{metrics}");
    assert!(
        metrics.contains("footfall_geoip_reloads_total 1"),
        "{metrics}"
    );
    hit("203.0.113.77", "broken").await;
    collector.shutdown().await;
    assert_eq!(
        db.count("SELECT count() FROM events WHERE path = '/broken' AND country = 'AT'")
            .await,
        1
    );

    let rows = db.rows("SELECT path, country, region, city, ip_prefix FROM events WHERE path IN ('/a', '/b', '/c') ORDER BY path").await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["country"].as_str().unwrap(),
                r["region"].as_str().unwrap(),
                r["city"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("DE", "Berlin", "Berlin"),
            ("JP", "Tokyo", "Shibuya"),
            ("", "", "")
        ]
    );
    assert_eq!(
        rows[0]["ip_prefix"], "203.0.113.0/24",
        "the IP itself is still sealed, not replaced by its place"
    );
    let after = db
        .rows("SELECT DISTINCT region FROM events WHERE path = '/after' AND country = 'AT'")
        .await;
    assert_eq!(after[0]["region"], "Vienna");
}
