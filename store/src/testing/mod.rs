//! For integration tests (feature `testing`): a throwaway database on the real dev ClickHouse
//! (FOOTFALL_TEST_CLICKHOUSE_URL, started by `scripts/test`) and ways to look into it.
//!
//! Shared by the collector's and the aggregator's tests, so that neither needs the other's crate
//! to set up or inspect what is stored; [`http`] is the client both use on their servers,
//! [`browser`] the headless Chromium both drive, and [`proxy`] cuts a program off ClickHouse.

pub mod browser;
pub mod http;
pub mod proxy;

use std::time::Duration;

use crate::cluster::Layout;
use crate::id::Id;

pub fn clickhouse_url() -> String {
    std::env::var("FOOTFALL_TEST_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

/// The cluster of the dev ClickHouse (`scripts/clickhouse start --cluster`, started by
/// `scripts/test`).
pub const DEV_CLUSTER: &str = "footfall_dev";

/// The first node of the dev cluster (FOOTFALL_TEST_CLICKHOUSE_CLUSTER_URL), and the other's,
/// which `scripts/clickhouse` puts 10 ports further. A test run without it fails rather than
/// skips: the cluster tests are part of the suite.
pub fn cluster_urls() -> [String; 2] {
    let first = std::env::var("FOOTFALL_TEST_CLICKHOUSE_CLUSTER_URL").expect(
        "FOOTFALL_TEST_CLICKHOUSE_CLUSTER_URL names the dev cluster's first node \
         (scripts/test starts it with `scripts/clickhouse start --cluster`)",
    );
    let (base, port) = first.rsplit_once(':').expect("a URL with a port");
    let port: u16 = port.trim_end_matches('/').parse().expect("a port");
    let second = format!("{base}:{}", port + 10);
    [first, second]
}

/// A database of its own for one test, dropped at the end, and a data dir for its keys.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub layout: Layout,
    pub data_dir: tempfile::TempDir,
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDb {
    pub fn new() -> Self {
        Self::on(clickhouse_url())
    }

    /// A database on the ClickHouse at `url`.
    pub fn on(url: String) -> Self {
        let name = format!("footfall_test_{}", Id::random().as_str().to_lowercase());
        Self {
            name,
            url,
            layout: Layout::default(),
            data_dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A database on the dev cluster, reached through its node at `url`.
    pub fn on_cluster(url: String) -> Self {
        let mut db = Self::on(url);
        db.layout = Layout::cluster(DEV_CLUSTER, false, &db.url).unwrap();
        db
    }

    /// A client of the server, not bound to the database (for creating it).
    pub fn server(&self) -> clickhouse::Client {
        self.layout
            .configure(clickhouse::Client::default().with_url(&self.url))
    }

    pub fn client(&self) -> clickhouse::Client {
        self.server()
            .with_database(&self.name)
            .with_setting("output_format_json_quote_64bit_integers", "0")
    }

    /// Applies the whole schema with the default retention.
    pub async fn migrate(&self) -> Vec<u32> {
        crate::migrations::migrate(&self.server(), &self.name, 395, &self.layout)
            .await
            .unwrap()
    }

    /// Makes the database the old code made: the statements of the migrations it had recorded
    /// as `old` (component, version), and those records.
    pub async fn as_left_by_the_old_code(&self, old: &[(&str, u32)]) {
        let server = self.server();
        let run = |sql: String| {
            let server = server.clone();
            async move { server.query(&sql).execute().await.unwrap() }
        };
        run(format!("CREATE DATABASE {}", self.name)).await;
        run(format!(
            "CREATE TABLE {}.schema_migrations
             (component LowCardinality(String), version UInt32, name String, applied_at DateTime('UTC') DEFAULT now())
             ENGINE = ReplacingMergeTree ORDER BY (component, version)",
            self.name
        ))
        .await;
        for m in crate::schema::MIGRATIONS
            .iter()
            .filter(|m| m.was.is_some_and(|w| old.contains(&w)))
        {
            for statement in m.statements {
                run(statement.replace("{db}", &self.name)).await;
            }
        }
        for (component, version) in old {
            self.client()
                .query(
                    "INSERT INTO schema_migrations (component, version, name) VALUES (?, ?, 'old')",
                )
                .bind(*component)
                .bind(*version)
                .execute()
                .await
                .unwrap();
        }
    }

    /// Rows of `sql` as JSON objects.
    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let bytes = self
            .client()
            .query(sql)
            .fetch_bytes("JSONEachRow")
            .unwrap()
            .collect()
            .await
            .unwrap();
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect()
    }

    /// The one number `sql` selects.
    pub async fn count(&self, sql: &str) -> u64 {
        let rows = self.rows(sql).await;
        rows[0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_u64()
            .unwrap()
    }

    /// Polls until `sql` counts at least `n`, for rows a writer flushes in the background.
    pub async fn wait_for_count(&self, sql: &str, n: u64) -> u64 {
        for _ in 0..100 {
            let c = self.count(sql).await;
            if c >= n {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.count(sql).await
    }

    /// Opens a stored sealed IP (`hex(ip_sealed)` of a row sealed under `key_id`) the way a
    /// subject export does: the private key in the data dir opens the epoch key stored in
    /// `ip_keys`, and that opens the IP.
    pub async fn unseal(&self, key_id: &serde_json::Value, sealed_hex: &str) -> std::net::IpAddr {
        let secret = footfall_seal::key_file::load_private_key(self.data_dir.path(), None).unwrap();
        let sql = format!("SELECT hex(sealed_key) AS k FROM ip_keys WHERE key_id = {key_id}");
        let keys = self.rows(&sql).await;
        assert_eq!(keys.len(), 1, "the epoch key of {key_id} is stored once");
        let epoch = secret
            .open_epoch_key(&unhex(keys[0]["k"].as_str().unwrap()))
            .unwrap();
        epoch.open_ip(&unhex(sealed_hex)).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} SYNC", self.name);
        let server = self.server();
        let layout = self.layout.clone();
        // Best effort, on a thread of its own: Drop may run inside a runtime. In a cluster, on
        // every node.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for node in layout.nodes(&server).await.unwrap_or_default() {
                    let _ = node.query(&sql).execute().await;
                }
            })
        })
        .join();
    }
}

/// Bytes of a hex string, as ClickHouse's `hex()` writes them.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
