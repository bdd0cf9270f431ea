//! Cluster mode: the schema laid out over the shards of a ClickHouse cluster.
//!
//! On one server (the default) the migrations are applied as written. With
//! FOOTFALL_CLICKHOUSE_CLUSTER every statement of the one migration list is rendered for the
//! cluster by [`Layout::render`], so a table added by a later migration is sharded without a
//! line of its own:
//!
//! - a table becomes `<name>_local` on every shard (engine, TTL, settings) and `<name>`, a
//!   `Distributed` table over them: writers and readers keep the contract's names;
//! - a table of another engine (a `Join` table of keys) is the same on every node, unsharded;
//! - a materialized view reads the local table and writes the local target, so a shard rolls up
//!   its own events; readers merge the shards' aggregate states through the Distributed rollup;
//! - rows go to the shard of a hash of the table's sorting key, so that the versions of one
//!   row meet on one shard (`FINAL` and the rollups' merges are per shard); `events` overrides
//!   it ([`crate::schema::SHARDING_KEYS`]) to keep a visitor's events on one shard;
//! - with Keeper (FOOTFALL_CLICKHOUSE_REPLICATED) engines become `Replicated*MergeTree` with the
//!   `{shard}` and `{replica}` macros and DDL runs once `ON CLUSTER`; without it, the plain
//!   engines, and every DDL statement runs on every node, learnt from the cluster itself.
//!
//! Rejected: hand-written cluster DDL per table (a second definition of every table, which the
//! next migration would forget), and having writers insert into the local tables (each collector
//! would need to know the shards and the sharding function).

use clickhouse::Client;

use crate::migrations::SchemaError;
use crate::schema::{MIGRATIONS, SHARDING_KEYS};

/// Blocks whose hashes a Replicated table keeps, and for how long, so that a batch the spool
/// replays after an outage is still recognised (ClickHouse's defaults: 10,000 blocks, an hour).
/// The time counts from the latest insert, so an outage of the whole cluster does not use it
/// up; what does is other collectors writing while one cannot: a week of it, and a week of one
/// insert a second per shard (a collector's flush interval at low traffic). Keeper holds each
/// hash, so the block count is not raised further.
pub const REPLICATED_DEDUP_WINDOW: u64 = 1_000_000;
pub const REPLICATED_DEDUP_WINDOW_SECONDS: u64 = 7 * 24 * 3600;

/// The cluster mode's suffix of a shard's table.
pub(crate) const LOCAL: &str = "_local";

/// One server, or the shards of a cluster.
#[derive(Debug, Clone, Default)]
pub struct Layout(Option<Cluster>);

#[derive(Debug, Clone)]
struct Cluster {
    name: String,
    /// The cluster has Keeper: Replicated engines, `ON CLUSTER` DDL.
    replicated: bool,
    /// Nodes are reached over HTTPS (as the configured URL is).
    https: bool,
}

/// Where a rendered statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once, through the node the program is connected to.
    Once,
    /// On every node of the cluster (DDL without Keeper).
    EveryNode,
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a usable cluster name (letters, digits, '_', '-' and '.')")]
pub struct BadClusterName(String);

impl Layout {
    /// The cluster `name` of `remote_servers`, reached from the server at `url`.
    pub fn cluster(name: &str, replicated: bool, url: &str) -> Result<Self, BadClusterName> {
        let usable = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !usable {
            return Err(BadClusterName(name.to_owned()));
        }
        Ok(Self(Some(Cluster {
            name: name.to_owned(),
            replicated,
            https: url.starts_with("https:"),
        })))
    }

    pub(crate) fn is_cluster(&self) -> bool {
        self.0.is_some()
    }

    /// The cluster's name in `remote_servers`; none on one server.
    pub fn cluster_name(&self) -> Option<&str> {
        self.0.as_ref().map(|c| c.name.as_str())
    }

    /// The statement `sql` (with `{db}` for the database `db`) as it is run in this layout.
    pub fn render(&self, sql: &str, db: &str) -> Result<Vec<(Scope, String)>, SchemaError> {
        let Some(cluster) = &self.0 else {
            return Ok(vec![(Scope::Once, sql.replace("{db}", db))]);
        };
        let ddl = if cluster.replicated {
            Scope::Once
        } else {
            Scope::EveryNode
        };
        let on = cluster.on_cluster();
        let unknown = || SchemaError::NotForCluster(sql.lines().next().unwrap_or("").to_owned());
        let sql = if cluster.replicated {
            replicated_settings(sql)
        } else {
            sql.to_owned()
        };
        let rendered = if let Some(rest) = sql.strip_prefix("CREATE TABLE IF NOT EXISTS {db}.")
            && !sharded_engine(split_name(rest).1)
        {
            // Not a MergeTree (a Join table the views look keys up in): the same on every node.
            vec![(
                ddl,
                insert_on(&sql, "CREATE TABLE IF NOT EXISTS {db}.", &on),
            )]
        } else if let Some(rest) = sql.strip_prefix("CREATE TABLE IF NOT EXISTS {db}.") {
            let (name, body) = split_name(rest);
            let body = if cluster.replicated {
                replicated_engine(body, name).ok_or_else(unknown)?
            } else {
                body.to_owned()
            };
            let key = sharding_key(name, &body).ok_or_else(unknown)?;
            vec![
                format!("CREATE TABLE IF NOT EXISTS {{db}}.{name}{LOCAL}{on}{body}"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {{db}}.{name}{on} AS {{db}}.{name}{LOCAL} \
                     ENGINE = Distributed('{}', '{{db}}', '{name}{LOCAL}', {key})",
                    cluster.name
                ),
            ]
            .into_iter()
            .map(|s| (ddl, s))
            .collect()
        } else if let Some(rest) = sql.strip_prefix("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.")
        {
            let (name, body) = split_name(rest);
            vec![(
                ddl,
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{name}{on}{}",
                    local_tables(body)
                ),
            )]
        } else if let Some(prefix) = [
            "ALTER TABLE {db}.",
            "DROP TABLE IF EXISTS {db}.",
            "TRUNCATE TABLE IF EXISTS {db}.",
        ]
        .into_iter()
        .find(|p| {
            sql.strip_prefix(p)
                .is_some_and(|rest| !tables().contains(&split_name(rest).0))
        }) {
            // A table that is not sharded, or a view: on every node as it is.
            vec![(ddl, insert_on(&sql, prefix, &on))]
        } else if sql.starts_with("DROP VIEW IF EXISTS {db}.") {
            vec![(ddl, insert_on(&sql, "DROP VIEW IF EXISTS {db}.", &on))]
        } else if let Some(rest) = sql.strip_prefix("TRUNCATE TABLE IF EXISTS {db}.") {
            let (name, tail) = split_name(rest);
            vec![(
                ddl,
                format!("TRUNCATE TABLE IF EXISTS {{db}}.{name}{LOCAL}{on}{tail}"),
            )]
        } else if let Some(rest) = sql.strip_prefix("ALTER TABLE {db}.") {
            let (name, command) = split_name(rest);
            let local = (
                ddl,
                format!("ALTER TABLE {{db}}.{name}{LOCAL}{on}{command}"),
            );
            // A Distributed table has the columns of its local tables, and no storage settings.
            if command.trim_start().starts_with("MODIFY SETTING") {
                vec![local]
            } else {
                vec![
                    local,
                    (ddl, format!("ALTER TABLE {{db}}.{name}{on}{command}")),
                ]
            }
        } else if let Some(rest) = sql.strip_prefix("DROP TABLE IF EXISTS {db}.") {
            let (name, tail) = split_name(rest);
            vec![
                (ddl, format!("DROP TABLE IF EXISTS {{db}}.{name}{on}{tail}")),
                (
                    ddl,
                    format!("DROP TABLE IF EXISTS {{db}}.{name}{LOCAL}{on}{tail}"),
                ),
            ]
        } else if let Some(rest) = sql.strip_prefix("CREATE DATABASE IF NOT EXISTS {db}") {
            vec![(
                ddl,
                format!("CREATE DATABASE IF NOT EXISTS {{db}}{on}{rest}"),
            )]
        } else if sql.starts_with("INSERT INTO {db}.") {
            // Data goes in once, through the Distributed tables.
            vec![(Scope::Once, sql.clone())]
        } else {
            return Err(unknown());
        };
        Ok(rendered
            .into_iter()
            .map(|(scope, s)| (scope, s.replace("{db}", db)))
            .collect())
    }

    /// Clients of every node of the cluster (`client`'s credentials, database and settings, each
    /// node's own address), as the nodes say in `system.clusters`; `[client]` on one server.
    pub async fn nodes(&self, client: &Client) -> Result<Vec<Client>, clickhouse::error::Error> {
        let Some(cluster) = &self.0 else {
            return Ok(vec![client.clone()]);
        };
        // Each node names its own entry of the cluster and its own HTTP port: the entries give
        // only the native port.
        let port = if cluster.https {
            "https_port"
        } else {
            "http_port"
        };
        let nodes: Vec<(String, u16)> = client
            .query(&format!(
                "SELECT host_name, port FROM clusterAllReplicas('{name}', view(
                     SELECT host_name, toUInt16(getServerPort('{port}')) AS port
                     FROM system.clusters WHERE cluster = '{name}' AND is_local))
                 ORDER BY host_name, port",
                name = cluster.name
            ))
            .fetch_all()
            .await?;
        let scheme = if cluster.https { "https" } else { "http" };
        Ok(nodes
            .into_iter()
            .map(|(host, port)| {
                let url = format!("{scheme}://{host}:{port}");
                client
                    .clone()
                    .with_compression(crate::config::compression(&url))
                    .with_url(url)
            })
            .collect())
    }

    /// Runs `ALTER TABLE <table> <command>` where `table`'s rows are stored: the table itself on
    /// one server, its local table on every shard in a cluster (`ON CLUSTER` with Keeper).
    /// `command` says `SETTINGS mutations_sync = 2` to return only once every shard is done.
    pub async fn alter(
        &self,
        client: &Client,
        table: &str,
        command: &str,
    ) -> Result<(), clickhouse::error::Error> {
        match &self.0 {
            None => {
                client
                    .query(&format!("ALTER TABLE {table} {command}"))
                    .execute()
                    .await
            }
            Some(cluster) if cluster.replicated => {
                client
                    .query(&format!(
                        "ALTER TABLE {table}{LOCAL}{} {command}",
                        cluster.on_cluster()
                    ))
                    .execute()
                    .await
            }
            Some(_) => {
                for node in self.nodes(client).await? {
                    node.query(&format!("ALTER TABLE {table}{LOCAL} {command}"))
                        .execute()
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// The name of the table that stores `table`'s rows on a node.
    pub(crate) fn stored(&self, table: &str) -> String {
        match self.0 {
            None => table.to_owned(),
            Some(_) => format!("{table}{LOCAL}"),
        }
    }

    /// Client settings every query of this layout needs: in a cluster, an insert returns only
    /// once every shard has stored its rows, so a batch is committed only once it is stored
    /// and a count right after it sees it.
    pub fn configure(&self, client: Client) -> Client {
        match self.0 {
            None => client,
            Some(_) => client.with_setting("distributed_foreground_insert", "1"),
        }
    }
}

impl Cluster {
    fn on_cluster(&self) -> String {
        if self.replicated {
            format!(" ON CLUSTER '{}'", self.name)
        } else {
            String::new()
        }
    }
}

/// `name` and what follows it in `rest`, which starts with a table or view name.
fn split_name(rest: &str) -> (&str, &str) {
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    rest.split_at(end)
}

/// `sql`, which starts with `prefix` and a name, with `on` (`ON CLUSTER ...` or nothing) after
/// the name.
fn insert_on(sql: &str, prefix: &str, on: &str) -> String {
    let (name, tail) = split_name(&sql[prefix.len()..]);
    format!("{prefix}{name}{on}{tail}")
}

/// Whether a table of this definition (after its name) is sharded: a MergeTree of any kind.
fn sharded_engine(body: &str) -> bool {
    body.find("ENGINE = ")
        .map(|at| split_name(&body[at + "ENGINE = ".len()..]).0)
        .is_some_and(|engine| engine.ends_with("MergeTree"))
}

/// Every `{db}.<table>` in `sql` that names a sharded table of the schema, as its local table.
fn local_tables(sql: &str) -> String {
    let tables = tables();
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("{db}.") {
        let (before, after) = rest.split_at(at + "{db}.".len());
        out.push_str(before);
        let (name, tail) = split_name(after);
        out.push_str(name);
        if tables.contains(&name) {
            out.push_str(LOCAL);
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// The sharded tables the migrations create.
fn tables() -> Vec<&'static str> {
    MIGRATIONS
        .iter()
        .flat_map(|m| m.statements.iter())
        .filter_map(|s| s.strip_prefix("CREATE TABLE IF NOT EXISTS {db}."))
        .map(split_name)
        .filter(|(_, body)| sharded_engine(body))
        .map(|(name, _)| name)
        .collect()
}

/// The Distributed table's sharding key for `table` (whose definition is `body`): the table's
/// own from [`SHARDING_KEYS`], else a hash of its sorting key.
fn sharding_key(table: &str, body: &str) -> Option<String> {
    if let Some((_, key)) = SHARDING_KEYS.iter().find(|(t, _)| *t == table) {
        return Some((*key).to_owned());
    }
    let order = &body[body.find("ORDER BY ")? + "ORDER BY ".len()..];
    let order = order.lines().next()?.trim();
    Some(format!("cityHash64({order})"))
}

/// `body` (a table's definition after its name) with its MergeTree engine made Replicated: the
/// replication path per shard and table, the replica from the node's macros.
fn replicated_engine(body: &str, table: &str) -> Option<String> {
    let at = body.find("ENGINE = ")? + "ENGINE = ".len();
    let (head, rest) = body.split_at(at);
    let (engine, tail) = split_name(rest);
    if !engine.ends_with("MergeTree") {
        return None;
    }
    let path = format!("'/clickhouse/tables/{{shard}}/{{db}}/{table}{LOCAL}', '{{replica}}'");
    let tail = match tail.strip_prefix('(') {
        Some(args) if args.starts_with(')') => format!("({path}{args}"),
        Some(args) => format!("({path}, {args}"),
        None => format!("({path}){tail}"),
    };
    Some(format!("{head}Replicated{engine}{tail}"))
}

/// `sql` with the deduplication window of a plain MergeTree table replaced by a Replicated
/// table's ([`REPLICATED_DEDUP_WINDOW`]).
fn replicated_settings(sql: &str) -> String {
    const PLAIN: &str = "non_replicated_deduplication_window = ";
    let Some(at) = sql.find(PLAIN) else {
        return sql.to_owned();
    };
    let value = &sql[at + PLAIN.len()..];
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    format!(
        "{}replicated_deduplication_window = {REPLICATED_DEDUP_WINDOW}, \
         replicated_deduplication_window_seconds = {REPLICATED_DEDUP_WINDOW_SECONDS}{}",
        &sql[..at],
        &value[digits..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sharded() -> Layout {
        Layout::cluster("c1", false, "http://ch:8123").unwrap()
    }

    fn replicated() -> Layout {
        Layout::cluster("c1", true, "http://ch:8123").unwrap()
    }

    #[test]
    fn one_server_runs_the_statement_as_written() {
        let sql = "CREATE TABLE IF NOT EXISTS {db}.t (a UInt8) ENGINE = MergeTree ORDER BY a";
        assert_eq!(
            Layout::default().render(sql, "d").unwrap(),
            [(
                Scope::Once,
                "CREATE TABLE IF NOT EXISTS d.t (a UInt8) ENGINE = MergeTree ORDER BY a".into()
            )]
        );
    }

    #[test]
    fn a_table_becomes_local_tables_behind_a_distributed_one() {
        let sql = "CREATE TABLE IF NOT EXISTS {db}.t\n(a UInt8)\nENGINE = MergeTree\nORDER BY (a, b)\nTTL x";
        let r = sharded().render(sql, "d").unwrap();
        assert_eq!(
            r,
            [
                (
                    Scope::EveryNode,
                    "CREATE TABLE IF NOT EXISTS d.t_local\n(a UInt8)\nENGINE = MergeTree\nORDER BY (a, b)\nTTL x".into()
                ),
                (
                    Scope::EveryNode,
                    "CREATE TABLE IF NOT EXISTS d.t AS d.t_local ENGINE = Distributed('c1', 'd', 't_local', cityHash64((a, b)))".into()
                ),
            ]
        );
    }

    #[test]
    fn events_keep_a_visitor_on_one_shard() {
        let r = sharded().render(MIGRATIONS[0].statements[0], "d").unwrap();
        assert!(r[1].1.ends_with(
            "Distributed('c1', 'd', 'events_local', cityHash64(if(visitor_id = '', toString(event_id), visitor_id)))"
        ));
    }

    #[test]
    fn with_keeper_engines_replicate_and_ddl_runs_on_cluster() {
        let sql = "CREATE TABLE IF NOT EXISTS {db}.t (a UInt8, u UInt8) ENGINE = ReplacingMergeTree(u) ORDER BY a SETTINGS non_replicated_deduplication_window = 10000";
        let r = replicated().render(sql, "d").unwrap();
        assert_eq!(r[0].0, Scope::Once);
        assert_eq!(
            r[0].1,
            "CREATE TABLE IF NOT EXISTS d.t_local ON CLUSTER 'c1' (a UInt8, u UInt8) ENGINE = \
             ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}', u) \
             ORDER BY a SETTINGS replicated_deduplication_window = 1000000, \
             replicated_deduplication_window_seconds = 604800"
        );
        assert!(
            r[1].1
                .starts_with("CREATE TABLE IF NOT EXISTS d.t ON CLUSTER 'c1' AS d.t_local")
        );
        let plain = "CREATE TABLE IF NOT EXISTS {db}.t (a UInt8) ENGINE = MergeTree ORDER BY a";
        assert!(replicated().render(plain, "d").unwrap()[0].1.contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}') ORDER BY a"
        ));
    }

    #[test]
    fn views_read_and_write_the_local_tables() {
        let sql = "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.v TO {db}.traffic_daily AS\nSELECT a FROM {db}.events JOIN {db}.other";
        assert_eq!(
            sharded().render(sql, "d").unwrap(),
            [(
                Scope::EveryNode,
                "CREATE MATERIALIZED VIEW IF NOT EXISTS d.v TO d.traffic_daily_local AS\nSELECT a FROM d.events_local JOIN d.other".into()
            )]
        );
        assert!(
            replicated().render(sql, "d").unwrap()[0]
                .1
                .starts_with("CREATE MATERIALIZED VIEW IF NOT EXISTS d.v ON CLUSTER 'c1' TO")
        );
    }

    #[test]
    fn columns_change_on_both_tables_settings_on_the_local_one() {
        let add = sharded()
            .render(
                "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS x UInt8",
                "d",
            )
            .unwrap();
        assert_eq!(
            add[0].1,
            "ALTER TABLE d.events_local ADD COLUMN IF NOT EXISTS x UInt8"
        );
        assert_eq!(
            add[1].1,
            "ALTER TABLE d.events ADD COLUMN IF NOT EXISTS x UInt8"
        );
        let set = replicated()
            .render(
                "ALTER TABLE {db}.traffic_daily MODIFY SETTING non_replicated_deduplication_window = 10000",
                "d",
            )
            .unwrap();
        assert_eq!(
            set,
            [(
                Scope::Once,
                "ALTER TABLE d.traffic_daily_local ON CLUSTER 'c1' MODIFY SETTING replicated_deduplication_window = 1000000, replicated_deduplication_window_seconds = 604800".into()
            )]
        );
    }

    #[test]
    fn tables_of_other_engines_and_views_are_the_same_on_every_node() {
        let join = "CREATE TABLE IF NOT EXISTS {db}.keys (month Date, k0 UInt64)\nENGINE = Join(ANY, LEFT, month)";
        assert_eq!(
            replicated().render(join, "d").unwrap(),
            [(
                Scope::Once,
                "CREATE TABLE IF NOT EXISTS d.keys ON CLUSTER 'c1' (month Date, k0 UInt64)\nENGINE = Join(ANY, LEFT, month)".into()
            )]
        );
        assert_eq!(sharded().render(join, "d").unwrap()[0].0, Scope::EveryNode);
        // Looked up by name in a view: not a sharded table, so not renamed.
        let view = "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.v TO {db}.traffic_daily AS\nSELECT joinGet('{db}.keys', 'k0', month) FROM {db}.events";
        assert!(
            sharded().render(view, "d").unwrap()[0]
                .1
                .ends_with("SELECT joinGet('d.keys', 'k0', month) FROM d.events_local")
        );
        assert_eq!(
            replicated()
                .render("DROP VIEW IF EXISTS {db}.v", "d")
                .unwrap(),
            [(
                Scope::Once,
                "DROP VIEW IF EXISTS d.v ON CLUSTER 'c1'".into()
            )]
        );
        assert_eq!(
            sharded()
                .render("DROP TABLE IF EXISTS {db}.keys", "d")
                .unwrap(),
            [(Scope::EveryNode, "DROP TABLE IF EXISTS d.keys".into())]
        );
    }

    #[test]
    fn a_sharded_table_is_emptied_on_every_shard() {
        assert_eq!(
            replicated()
                .render("TRUNCATE TABLE IF EXISTS {db}.sessions_daily", "d")
                .unwrap(),
            [(
                Scope::Once,
                "TRUNCATE TABLE IF EXISTS d.sessions_daily_local ON CLUSTER 'c1'".into()
            )]
        );
        let add = "ALTER TABLE {db}.sessions_daily\nADD COLUMN IF NOT EXISTS a UInt64 AFTER visits,\nADD COLUMN IF NOT EXISTS b UInt64";
        let r = sharded().render(add, "d").unwrap();
        assert_eq!(
            r[0].1,
            add.replace("{db}.sessions_daily", "d.sessions_daily_local")
        );
        assert_eq!(r[1].1, add.replace("{db}", "d"));
    }

    #[test]
    fn data_goes_in_once_through_the_distributed_tables() {
        let sql = "INSERT INTO {db}.a SELECT * FROM {db}.b";
        assert_eq!(
            replicated().render(sql, "d").unwrap(),
            [(Scope::Once, "INSERT INTO d.a SELECT * FROM d.b".into())]
        );
    }

    #[test]
    fn every_migration_renders_in_every_layout() {
        for layout in [Layout::default(), sharded(), replicated()] {
            for m in MIGRATIONS {
                for s in m.statements {
                    let r = layout.render(s, "d").unwrap();
                    assert!(r.iter().all(|(_, sql)| !sql.contains("{db}")));
                }
            }
        }
        let odd = sharded().render("OPTIMIZE TABLE {db}.t", "d");
        assert!(matches!(odd, Err(SchemaError::NotForCluster(_))));
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(Layout::cluster("footfall_dev", false, "").is_ok());
        assert!(Layout::cluster("a'b", false, "").is_err());
        assert!(Layout::cluster("", false, "").is_err());
    }
}
