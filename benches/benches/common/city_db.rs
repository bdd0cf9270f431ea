//! A GeoIP City database for the suites, built with the tests' MaxMind DB writer: City layout,
//! IPv6 tree with IPv4 under `::/96`, so an IPv4 lookup walks the same 120-odd nodes as in
//! GeoLite2, and records shaped like GeoLite2's (continent, country, registered country,
//! subdivision and city with names in eight languages, location, postal code), so decoding
//! skips what a real record holds. It places `i.i.0.0/16` for every byte `i`, the
//! documentation network `203.0.113.0/24` (the client of the suites' pixel requests) and
//! `2001:db8::/32`.

// Shared with the tests, which use all of it.
#[allow(dead_code)]
#[path = "../../../collector/tests/common/mmdb.rs"]
mod mmdb;

use std::sync::Arc;

use footfall_collector::enrich::geoip::GeoIp;
use mmdb::Value;

/// Writes the database to a temporary file, opens it and removes the file.
pub fn city_database() -> Arc<GeoIp> {
    let dir = std::env::temp_dir().join(format!("footfall-bench-geoip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join("city.mmdb");
    let networks: Vec<(String, Value)> = (0..=255u8)
        .map(|i| {
            (
                format!("{i}.{i}.0.0/16"),
                geolite2_city("DE", "Berlin", &format!("City {i}")),
            )
        })
        .chain([
            (
                "203.0.113.0/24".to_owned(),
                geolite2_city("FR", "Île-de-France", "Paris"),
            ),
            (
                "2001:db8::/32".to_owned(),
                geolite2_city("JP", "Tokyo", "Shibuya"),
            ),
        ])
        .collect();
    mmdb::write(&path, "GeoLite2-City", networks);
    let geoip = Arc::new(GeoIp::open(&path).expect("the database just written"));
    std::fs::remove_dir_all(&dir).expect("the temporary folder");
    geoip
}

/// A City record with the fields and languages a GeoLite2 City record has.
fn geolite2_city(country: &str, region: &str, city: &str) -> Value {
    let names = |name: &str| {
        Value::Map(
            ["de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"]
                .into_iter()
                .map(|language| (language, Value::Str(format!("{name} ({language})"))))
                .collect(),
        )
    };
    let place = |id: u32, name: &str| {
        Value::Map(vec![("geoname_id", Value::U32(id)), ("names", names(name))])
    };
    let country_record = || {
        Value::Map(vec![
            ("geoname_id", Value::U32(2_921_044)),
            ("iso_code", Value::Str(country.into())),
            ("names", names(country)),
        ])
    };
    Value::Map(vec![
        ("city", place(2_950_159, city)),
        (
            "continent",
            Value::Map(vec![
                ("code", Value::Str("EU".into())),
                ("geoname_id", Value::U32(6_255_148)),
                ("names", names("Europe")),
            ]),
        ),
        ("country", country_record()),
        (
            "location",
            Value::Map(vec![
                ("accuracy_radius", Value::U16(20)),
                ("metro_code", Value::U16(0)),
                ("time_zone", Value::Str("Europe/Berlin".into())),
            ]),
        ),
        (
            "postal",
            Value::Map(vec![("code", Value::Str("10115".into()))]),
        ),
        ("registered_country", country_record()),
        (
            "subdivisions",
            Value::Array(vec![Value::Map(vec![
                ("geoname_id", Value::U32(2_950_157)),
                ("iso_code", Value::Str("BE".into())),
                ("names", names(region)),
            ])]),
        ),
    ])
}
