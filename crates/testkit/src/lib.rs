//! Test harness shared by every crate's integration tests (dev-dependency only).
//!
//! Owns fresh databases per test — PostgreSQL copied from a migrated template, or a temporary SQLite file —
//! and Redis key prefixes per test; each is removed when the test ends, even when it panics.
#![expect(
    clippy::expect_used,
    reason = "a test harness fails loudly: a missing database must stop the test, not be handled"
)]

use std::{sync::Arc, time::Duration};

use cybervpn_config::{Config, Secret};
use cybervpn_kv::Kv;
use cybervpn_migrations::{FINGERPRINT, Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// PostgreSQL server the tests use (a maintenance database URL); override with `CYBERVPN_TEST_PG_URL`.
pub fn postgres_admin_url() -> String {
    std::env::var("CYBERVPN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis server the tests use; override with `CYBERVPN_TEST_REDIS_URL`.
pub fn redis_url() -> String {
    std::env::var("CYBERVPN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Generates, from each `async fn(Backend)`, a module with one test per backend (`postgres`, `sqlite`).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await;
            }

            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await;
            }
        }
    )+};
}

/// Which database engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh PostgreSQL database copied from the migrated template.
    Postgres,
    /// A fresh, migrated SQLite file in a temporary directory.
    Sqlite,
}

/// A database that exists for one test and is dropped with it.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Postgres { name: String },
    Sqlite { _dir: tempfile::TempDir },
}

impl TestDb {
    /// A fresh, fully migrated database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite().await,
        }
    }

    /// A fresh PostgreSQL database, copied from a template migrated once per schema version.
    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let admin = connect_admin(&admin_url).await;
        let template = ensure_template(&admin, &admin_url).await;
        let name = format!("cybervpn_test_{}", uuid::Uuid::new_v4().simple());
        exec(
            &admin,
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        )
        .await;
        let _ = admin.close().await;
        Self {
            url: replace_database(&admin_url, &name),
            cleanup: Cleanup::Postgres { name },
        }
    }

    /// A fresh SQLite file, migrated.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for SQLite");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("cybervpn.db").display()
        );
        let conn = Database::connect(url.as_str())
            .await
            .expect("open temporary SQLite database");
        Migrator::up(&conn, None)
            .await
            .expect("migrate SQLite database");
        let _ = conn.close().await;
        Self {
            url,
            cleanup: Cleanup::Sqlite { _dir: dir },
        }
    }

    /// Connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a connection pool to this database.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(self.url.as_str())
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { name } = &self.cleanup {
            let name = name.clone();
            block_on_own_thread(async move {
                let admin = connect_admin(&postgres_admin_url()).await;
                exec(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                )
                .await;
                let _ = admin.close().await;
            });
        }
    }
}

/// A Redis key prefix that belongs to one test; every key under it is deleted when it is dropped.
#[derive(Clone)]
pub struct TestRedis {
    url: String,
    kv: Kv,
    _guard: Arc<RedisGuard>,
}

struct RedisGuard {
    kv: Kv,
}

impl TestRedis {
    /// A fresh prefix on the test Redis, which must be reachable.
    pub async fn new() -> Self {
        Self::at(&redis_url()).await
    }

    /// A fresh prefix on the Redis at `url`; panics with how to start Redis when it is unreachable.
    pub async fn at(url: &str) -> Self {
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let kv = Kv::new(url, &prefix, 4).expect("Redis pool");
        if let Err(err) = kv.ping().await {
            panic!(
                "Redis at {url} is unreachable ({err}). Start it with: \
                 redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no"
            );
        }
        Self {
            url: url.to_owned(),
            kv: kv.clone(),
            _guard: Arc::new(RedisGuard { kv }),
        }
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This test's key prefix.
    pub fn prefix(&self) -> &str {
        self.kv.prefix()
    }

    /// A client scoped to this test's prefix.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Keys currently stored under this test's prefix.
    pub async fn keys(&self) -> Vec<String> {
        keys_with_prefix(&self.kv).await
    }
}

async fn keys_with_prefix(kv: &Kv) -> Vec<String> {
    let mut conn = kv.connection().await.expect("Redis connection");
    let pattern = format!("{}*", kv.prefix());
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = deadpool_redis::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

impl Drop for RedisGuard {
    fn drop(&mut self) {
        let kv = self.kv.clone();
        block_on_own_thread(async move {
            let keys = keys_with_prefix(&kv).await;
            if keys.is_empty() {
                return;
            }
            let mut conn = kv.connection().await.expect("Redis connection");
            deadpool_redis::redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await
                .expect("delete the test's Redis keys");
        });
    }
}

/// Runs `work` to completion on a private runtime and thread (drop code cannot rely on the test's runtime),
/// and fails the test if the work panicked, unless the test is already failing.
fn block_on_own_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let joined = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime for test cleanup")
            .block_on(work);
    })
    .join();
    if joined.is_err() && !std::thread::panicking() {
        panic!("test cleanup failed: see the panic above");
    }
}

/// Configuration for an app under test: the given database, optionally Redis, port 0, quiet logs.
pub fn config(db: &TestDb, redis: Option<&TestRedis>) -> Config {
    let mut config = Config::default();
    config.database.url = Some(Secret::new(db.url().to_owned()));
    config.database.max_connections = 4;
    config.database.min_connections = 0;
    if let Some(redis) = redis {
        config.redis.url = Some(Secret::new(redis.url().to_owned()));
        config.redis.key_prefix = redis.prefix().to_owned();
        config.redis.pool_size = 4;
    }
    config.api.listen = "127.0.0.1:0".parse().expect("loopback address");
    config.api.workers = 1;
    config.api.shutdown_timeout_secs = 1;
    config.data_dir = std::env::temp_dir();
    config
}

async fn connect_admin(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    match Database::connect(options).await {
        Ok(conn) => conn,
        Err(err) => panic!(
            "PostgreSQL at {url} is unreachable ({err}). Start it with: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
             (or point CYBERVPN_TEST_PG_URL at a server)"
        ),
    }
}

async fn exec(conn: &DatabaseConnection, sql: &str) {
    if let Err(err) = conn.execute_unprepared(sql).await {
        panic!("`{sql}` failed: {err}");
    }
}

/// Creates the migrated template for the current migrations once, under an advisory lock so that parallel
/// test processes agree. Templates of other migration sets are left alone: another checkout may be using them.
async fn ensure_template(admin: &DatabaseConnection, admin_url: &str) -> String {
    const LOCK_KEY: i64 = 0x6379_7672_706e; // "cyvrpn"
    let template = format!("cybervpn_tpl_{FINGERPRINT}");
    exec(admin, &format!("SELECT pg_advisory_lock({LOCK_KEY})")).await;
    let exists = !admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 FROM pg_database WHERE datname = '{template}'"),
        ))
        .await
        .expect("look up the template database")
        .is_empty();
    if !exists {
        let building = format!("{template}_building");
        exec(admin, &format!("DROP DATABASE IF EXISTS \"{building}\"")).await;
        exec(admin, &format!("CREATE DATABASE \"{building}\"")).await;
        let conn = Database::connect(replace_database(admin_url, &building))
            .await
            .expect("connect to template database");
        Migrator::up(&conn, None)
            .await
            .expect("migrate template database");
        let _ = conn.close().await;
        exec(
            admin,
            &format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\""),
        )
        .await;
    }
    exec(admin, &format!("SELECT pg_advisory_unlock({LOCK_KEY})")).await;
    template
}

/// `url` with its database name replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::{TestRedis, connect_admin, replace_database};

    #[tokio::test]
    #[should_panic(
        expected = "PostgreSQL at postgres://postgres@127.0.0.1:1/postgres is unreachable"
    )]
    async fn unreachable_postgres_fails_the_test_with_how_to_start_it() {
        connect_admin("postgres://postgres@127.0.0.1:1/postgres").await;
    }

    #[tokio::test]
    #[should_panic(expected = "Redis at redis://127.0.0.1:1 is unreachable")]
    async fn unreachable_redis_fails_the_test_with_how_to_start_it() {
        TestRedis::at("redis://127.0.0.1:1").await;
    }

    #[tokio::test]
    async fn postgres_test_databases_are_dropped_with_their_guard() {
        let db = super::TestDb::postgres().await;
        let name = db.url().rsplit('/').next().unwrap().to_owned();
        let conn = db.connect().await;
        conn.execute_unprepared("SELECT 1 FROM plans LIMIT 1")
            .await
            .expect("the copy is migrated");
        conn.close().await.unwrap();
        drop(db);
        let admin = connect_admin(&super::postgres_admin_url()).await;
        let left = admin
            .query_all_raw(Statement::from_string(
                admin.get_database_backend(),
                format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            ))
            .await
            .unwrap();
        assert!(left.is_empty(), "{name} still exists");
    }

    #[tokio::test]
    async fn redis_keys_under_a_test_prefix_are_removed_with_it() {
        use cybervpn_kv::AsyncCommands;
        let redis = TestRedis::new().await;
        let kv = redis.kv().clone();
        let prefix = redis.prefix().to_owned();
        let mut conn = kv.connection().await.unwrap();
        let _: () = conn.set(kv.key("a"), 1).await.unwrap();
        let _: () = conn.set(kv.key("b"), 2).await.unwrap();
        assert_eq!(redis.keys().await.len(), 2);
        drop(redis);
        let left: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
