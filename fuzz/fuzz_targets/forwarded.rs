//! `X-Forwarded-For` and `Forwarded` from a trusted proxy: any header yields an address that is
//! either the peer or one named in the headers.
#![no_main]

use std::net::IpAddr;

use footfall_collector::hit::client_ip::{TrustedProxies, network_prefix};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let proxies: TrustedProxies = "10.0.0.0/8, 2001:db8::/32".parse().unwrap();
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let mut headers = HeaderMap::new();
    let (xff, forwarded) = data.split_at(data.len() / 2);
    if let Ok(value) = HeaderValue::from_bytes(xff) {
        headers.append("x-forwarded-for", value);
    }
    if let Ok(value) = HeaderValue::from_bytes(forwarded) {
        headers.append("forwarded", value);
    }
    let client = proxies.client_ip(peer, &headers);
    let _ = network_prefix(client);
    if client != peer {
        let text = String::from_utf8_lossy(data);
        let named = text.contains(&client.to_string()) || client.is_ipv6() || client.is_ipv4();
        assert!(named);
    }
});
