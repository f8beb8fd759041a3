//! The daily backup on both databases, and its restore done exactly as docs/runbooks/restore.md says.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use cybervpn_config::{Config, Secret};
use cybervpn_db::Db;
use cybervpn_domain::{CustomerId, TrafficLimit};
use cybervpn_jobs::{
    Job,
    catalog::{DatabaseBackup, DeliverBackup},
};
use cybervpn_testkit::Backend;

use crate::rig::Rig;

/// The shell block of the restore runbook whose fence is tagged `tag`, unindented.
fn runbook_block(tag: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/runbooks/restore.md");
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .skip_while(|line| line.trim() != format!("```sh {tag}"));
    let fence = lines.next().expect("the runbook has the block");
    let indent = fence.len() - fence.trim_start().len();
    lines
        .take_while(|line| line.trim() != "```")
        .map(|line| format!("{}\n", line.get(indent..).unwrap_or("")))
        .collect()
}

/// Runs a runbook block with bash (any error stops it) and returns what it printed.
fn run_block(block: &str, env: &[(&str, String)]) -> String {
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the runbook block failed:\n{block}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The files in `dir`, oldest first.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    found.sort();
    found
}

/// A rig whose backups go to `dir`, keeping two, with a customer who has a subscription.
async fn rig_with_data(backend: Backend, dir: &Path) -> (Rig, CustomerId) {
    let dir = dir.to_owned();
    let rig = Rig::with(backend, move |config| {
        config.backup.dir = Some(dir);
        config.backup.keep = 2;
    })
    .await;
    let alice = rig.customer("alice").await;
    rig.subscription(
        alice,
        chrono::Utc::now() + chrono::TimeDelta::days(30),
        TrafficLimit::Unlimited,
    )
    .await;
    (rig, alice)
}

/// Runs the backup job three times through the worker: each queues one delivery; two files are kept.
async fn back_up_three_times(rig: &Rig, dir: &Path, extension: &str) -> PathBuf {
    for slot in 1..=3 {
        rig.run_job(&DatabaseBackup { slot }, || async {
            rig.queue.depth(DeliverBackup::NAME).await.unwrap() == u64::try_from(slot).unwrap()
        })
        .await;
    }
    let kept = files(dir);
    assert_eq!(kept.len(), 2, "the newest two are kept: {kept:?}");
    for file in &kept {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("cybervpn-") && name.ends_with(extension),
            "{name}"
        );
    }
    let newest = kept.last().unwrap().clone();
    let notices = rig.db.notifications().of_kind("backup", 10).await.unwrap();
    assert_eq!(notices.len(), 3, "one staff notice per backup");
    let name = newest.file_name().unwrap().to_str().unwrap();
    assert!(
        notices[0].body.contains(name),
        "the newest notice names the newest file: {}",
        notices[0].body
    );
    assert!(matches!(notices[0].audience, cybervpn_db::Audience::Staff));
    newest
}

/// The hex SHA-256 a runbook's `sha256sum` printed.
fn printed_sha(output: &str) -> &str {
    output.split_whitespace().next().unwrap()
}

/// Checks the restored database holds `alice` with her subscription, at the current schema.
async fn assert_restored(url: String, alice: CustomerId) {
    let mut config = Config::default();
    config.database.url = Some(Secret::new(url));
    let restored = Db::connect(&config).await.unwrap();
    assert_eq!(
        restored.pending_migrations().await.unwrap(),
        Vec::<String>::new(),
        "the schema came back whole"
    );
    let customer = restored.customers().get(alice).await.unwrap();
    assert_eq!(customer.username.as_str(), "alice");
    let subscriptions = restored.subscriptions().of_customer(alice).await.unwrap();
    assert_eq!(subscriptions.len(), 1);
    restored.close().await.unwrap();
}

/// Drops a database the test created, even when the test fails.
struct DropDatabase(String, Vec<(&'static str, String)>);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = Command::new("dropdb")
            .args(["--if-exists", "--force", &self.0])
            .envs(self.1.iter().map(|(k, v)| (*k, v.as_str())))
            .status();
    }
}

/// libpq's variables for the test server.
fn libpq_env() -> Vec<(&'static str, String)> {
    let admin = url::Url::parse(&cybervpn_testkit::postgres_admin_url()).unwrap();
    let mut env = vec![
        ("PGHOST", admin.host_str().unwrap().to_owned()),
        ("PGPORT", admin.port().unwrap_or(5432).to_string()),
        ("PGUSER", admin.username().to_owned()),
    ];
    if let Some(password) = admin.password() {
        env.push(("PGPASSWORD", password.to_owned()));
    }
    env
}

#[tokio::test]
async fn a_postgres_backup_is_kept_announced_and_restored_by_the_runbook() {
    let dir = tempfile::tempdir().unwrap();
    let (rig, alice) = rig_with_data(Backend::Postgres, dir.path()).await;
    let newest = back_up_three_times(&rig, dir.path(), ".sql.gz").await;

    let name = format!("cybervpn_restore_{}", uuid::Uuid::new_v4().simple());
    let pg = libpq_env();
    let _cleanup = DropDatabase(name.clone(), pg.clone());
    let mut env = pg.clone();
    env.push(("BACKUP", newest.display().to_string()));
    env.push(("RESTORE_DB", name.clone()));
    let printed = run_block(&runbook_block("restore-postgres"), &env);
    let notice = &rig.db.notifications().of_kind("backup", 1).await.unwrap()[0];
    assert!(
        notice.body.contains(printed_sha(&printed)),
        "the caption's sha256 is the file's: {printed}"
    );
    assert!(printed.contains("customers"), "{printed}");

    let admin = cybervpn_testkit::postgres_admin_url();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    assert_restored(url, alice).await;
}

#[tokio::test]
async fn a_sqlite_backup_is_an_online_copy_restored_by_the_runbook() {
    let dir = tempfile::tempdir().unwrap();
    let (rig, alice) = rig_with_data(Backend::Sqlite, dir.path()).await;
    let newest = back_up_three_times(&rig, dir.path(), ".sqlite.gz").await;

    let scratch = tempfile::tempdir().unwrap();
    let restored = scratch.path().join("cybervpn.db");
    let printed = run_block(
        &runbook_block("restore-sqlite"),
        &[
            ("BACKUP", newest.display().to_string()),
            ("RESTORE_FILE", restored.display().to_string()),
        ],
    );
    let notice = &rig.db.notifications().of_kind("backup", 1).await.unwrap()[0];
    assert!(notice.body.contains(printed_sha(&printed)), "{printed}");
    assert_restored(format!("sqlite://{}", restored.display()), alice).await;
}

#[tokio::test]
async fn a_failing_pg_dump_leaves_no_file_and_no_notice() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().to_owned();
    let rig = Rig::with(Backend::Postgres, move |config| {
        config.backup.dir = Some(target);
        config.backup.pg_dump = "false".to_owned();
    })
    .await;
    let err = cybervpn_worker::backup(&rig.services).await.unwrap_err();
    assert!(err.message().contains("pg_dump"), "{}", err.message());
    assert_eq!(
        files(dir.path()),
        Vec::<PathBuf>::new(),
        "no partial file left"
    );
    assert!(
        rig.db
            .notifications()
            .of_kind("backup", 1)
            .await
            .unwrap()
            .is_empty()
    );

    let rig = Rig::with(Backend::Postgres, {
        let target = dir.path().to_owned();
        move |config| {
            config.backup.dir = Some(target);
            config.backup.pg_dump = "/nonexistent/pg_dump".to_owned();
        }
    })
    .await;
    let err = cybervpn_worker::backup(&rig.services).await.unwrap_err();
    assert!(err.message().contains("not found"), "{}", err.message());
}
