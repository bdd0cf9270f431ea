//! `deploy/cluster/` holds together: every replica of the cluster's `remote_servers` is a
//! compose service with its own macros file naming its shard and itself, and every Footfall
//! service names that cluster, with Keeper. (Its DDL is tested in `cluster.rs`; the compose
//! cluster itself needs Docker.)

use std::path::Path;

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cluster");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The texts between `<tag>` and `</tag>` in `xml`, in order.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .map(|rest| &rest[..rest.find(close.as_str()).unwrap()])
        .collect()
}

#[test]
fn every_replica_is_a_service_with_its_macros_and_every_program_names_the_cluster() {
    let cluster = read("clickhouse/cluster.xml");
    let compose = read("docker-compose.yml");
    let servers = elements(&cluster, "remote_servers");
    assert_eq!(servers.len(), 1);
    let name = servers[0].trim().strip_prefix('<').unwrap();
    let name = &name[..name.find('>').unwrap()];
    let shards = elements(servers[0], "shard");
    assert_eq!(shards.len(), 2, "two shards");
    for (s, shard) in shards.iter().enumerate() {
        assert!(shard.contains("<internal_replication>true</internal_replication>"));
        let hosts = elements(shard, "host");
        assert_eq!(hosts.len(), 2, "two replicas of shard {}", s + 1);
        for (r, host) in hosts.iter().enumerate() {
            let file = format!("macros-s{}-r{}.xml", s + 1, r + 1);
            let macros = read(&format!("clickhouse/{file}"));
            assert_eq!(elements(&macros, "shard"), [(s + 1).to_string()], "{file}");
            assert_eq!(elements(&macros, "replica"), [*host], "{file}");
            assert!(
                compose.contains(&format!("  {host}:\n"))
                    && compose.contains(&format!("hostname: {host}\n"))
                    && compose.contains(&format!(
                        "./clickhouse/{file}:/etc/clickhouse-server/config.d/macros.xml:ro"
                    )),
                "{host} is not a service with {file}"
            );
        }
    }
    assert!(compose.contains(&format!("FOOTFALL_CLICKHOUSE_CLUSTER: {name}\n")));
    assert!(compose.contains("FOOTFALL_CLICKHOUSE_REPLICATED: \"true\"\n"));
    assert!(compose.contains("image: clickhouse/clickhouse-server:26.9\n"));
    let keeper = elements(&cluster, "zookeeper");
    assert!(keeper[0].contains("<host>keeper</host><port>9181</port>"));
    assert!(read("keeper/keeper.xml").contains("<tcp_port>9181</tcp_port>"));
    assert!(footfall_store::cluster::Layout::cluster(name, true, "http://ch-s1-r1:8123").is_ok());
}
