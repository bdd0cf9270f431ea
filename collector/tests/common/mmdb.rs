//! A minimal MaxMind DB writer, so GeoIP tests and benchmarks build their own database instead
//! of downloading one.
//!
//! It writes the MaxMind DB format 2.0 (an IPv6 search tree with 24-bit records, the data
//! section, the metadata) for non-overlapping networks. IPv4 networks go where readers look
//! for them in an IPv6 tree: under `::/96`.

use std::net::IpAddr;
use std::path::Path;

/// A value of the data section.
pub enum Value {
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Array(Vec<Value>),
    Map(Vec<(&'static str, Value)>),
}

/// The record of a GeoIP2/GeoLite2 City database for one network.
pub fn city(country: &str, region: &str, city: &str) -> Value {
    let names = |name: &str| Value::Map(vec![("en", Value::Str(name.into()))]);
    Value::Map(vec![
        ("city", Value::Map(vec![("names", names(city))])),
        (
            "country",
            Value::Map(vec![
                ("iso_code", Value::Str(country.into())),
                ("names", names(country)),
            ]),
        ),
        (
            "subdivisions",
            Value::Array(vec![Value::Map(vec![("names", names(region))])]),
        ),
    ])
}

/// The record of a GeoIP2/GeoLite2 Country database for one network.
pub fn country(country: &str) -> Value {
    Value::Map(vec![(
        "country",
        Value::Map(vec![("iso_code", Value::Str(country.into()))]),
    )])
}

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// Writes a database of `database_type` (like `GeoLite2-City`) to `path` mapping each network
/// (`203.0.113.0/24`, `2001:db8::/32`) to its record.
pub fn write<N: AsRef<str>>(
    path: &Path,
    database_type: &str,
    networks: impl IntoIterator<Item = (N, Value)>,
) {
    let mut tree: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    let mut data = Vec::new();
    for (network, value) in networks {
        let (addr, len) = network
            .as_ref()
            .split_once('/')
            .expect("a network in CIDR notation");
        let (bits, len) = match addr.parse::<IpAddr>().expect("an IP address") {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + len.parse::<u32>().unwrap()),
            IpAddr::V6(v6) => (u128::from(v6), len.parse::<u32>().unwrap()),
        };
        let offset = data.len();
        encode(&value, &mut data);
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                tree[node][bit] = Record::Data(offset);
                break;
            }
            node = match tree[node][bit] {
                Record::Node(next) => next,
                Record::Empty => {
                    tree.push([Record::Empty; 2]);
                    tree[node][bit] = Record::Node(tree.len() - 1);
                    tree.len() - 1
                }
                Record::Data(_) => panic!("networks overlap"),
            };
        }
    }

    let node_count = tree.len();
    let mut file = Vec::new();
    for node in &tree {
        for record in node {
            let value = match *record {
                Record::Empty => node_count,
                Record::Node(next) => next,
                Record::Data(offset) => node_count + 16 + offset,
            };
            file.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
        }
    }
    file.extend_from_slice(&[0; 16]);
    file.extend_from_slice(&data);
    file.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let metadata = Value::Map(vec![
        ("binary_format_major_version", Value::U16(2)),
        ("binary_format_minor_version", Value::U16(0)),
        ("build_epoch", Value::U64(1_700_000_000)),
        ("database_type", Value::Str(database_type.into())),
        (
            "description",
            Value::Map(vec![("en", Value::Str("Footfall test database".into()))]),
        ),
        ("ip_version", Value::U16(6)),
        ("languages", Value::Array(vec![Value::Str("en".into())])),
        ("node_count", Value::U32(node_count as u32)),
        ("record_size", Value::U16(24)),
    ]);
    encode(&metadata, &mut file);
    std::fs::write(path, file).unwrap();
}

/// A control byte (with the extended type byte for types above 7) and the size.
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let head = if kind <= 7 { kind << 5 } else { 0 };
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..29 => (size as u8, vec![]),
        29..285 => (29, vec![(size - 29) as u8]),
        _ => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
    };
    out.push(head | size_bits);
    if kind > 7 {
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    let uint = |kind: u8, n: u64, out: &mut Vec<u8>| {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        control(kind, 8 - skip, out);
        out.extend_from_slice(&bytes[skip..]);
    };
    match value {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(5, u64::from(*n), out),
        Value::U32(n) => uint(6, u64::from(*n), out),
        Value::U64(n) => uint(9, *n, out),
        Value::Array(items) => {
            control(11, items.len(), out);
            items.iter().for_each(|item| encode(item, out));
        }
        Value::Map(pairs) => {
            control(7, pairs.len(), out);
            for (key, item) in pairs {
                encode(&Value::Str((*key).into()), out);
                encode(item, out);
            }
        }
    }
}
