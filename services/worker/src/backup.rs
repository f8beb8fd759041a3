//! The daily database backup: a consistent dump (`pg_dump`, or SQLite's online `VACUUM INTO`) compressed with
//! gzip into the backup directory under a name that sorts by time, the newest `backup.keep` kept, and a staff
//! notification whose delivery — the bot sends the file to the admin chats — is queued in the same transaction.

use std::{
    io::{self, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use chrono::{DateTime, Utc};
use cybervpn_db::{Audience, DbBackend, Notifications, TransactionTrait};
use cybervpn_jobs::{JobError, JobResultExt, catalog::DeliverBackup};
use flate2::{Compression, write::GzEncoder};
use prometheus::{IntGauge, Registry};
use sha2::{Digest, Sha256};

use crate::Services;

/// Backups are named `cybervpn-<UTC time to the millisecond>.<sql|sqlite>.gz`, so they sort by time; only such
/// files are counted and pruned.
const PREFIX: &str = "cybervpn-";
const SUFFIX: &str = ".gz";

/// A backup written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The compressed file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the compressed file, for checking a copy before restoring it.
    pub sha256: String,
}

/// Gauges of the last backup this deployment took.
#[derive(Clone)]
pub(crate) struct BackupMetrics {
    last_success: IntGauge,
    last_size: IntGauge,
}

impl BackupMetrics {
    /// Registers the gauges, starting from the newest backup already in `dir`.
    pub(crate) fn register(registry: &Registry, dir: &Path) -> prometheus::Result<Self> {
        let last_success = IntGauge::new(
            "backup_last_success_timestamp_seconds",
            "Unix time of the newest database backup in the backup directory",
        )?;
        let last_size = IntGauge::new(
            "backup_last_size_bytes",
            "Size of the newest database backup, compressed",
        )?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(last_size.clone()))?;
        if let Some(newest) = backups(dir).ok().and_then(|mut all| all.pop())
            && let Ok(meta) = std::fs::metadata(&newest)
        {
            let modified = meta.modified().ok().map(DateTime::<Utc>::from);
            last_success.set(modified.map_or(0, |at| at.timestamp()));
            last_size.set(i64::try_from(meta.len()).unwrap_or(i64::MAX));
        }
        Ok(Self {
            last_success,
            last_size,
        })
    }
}

/// Takes a backup now, keeps the newest `backup.keep`, and queues its delivery to the admin chats.
pub async fn backup(services: &Services) -> Result<Backup, JobError> {
    let config = &services.config;
    let dir = config.backup_dir();
    std::fs::create_dir_all(&dir).or_retry("create the backup directory")?;
    let now = Utc::now();
    let kind = match services.db.backend() {
        DbBackend::Postgres => "sql",
        DbBackend::Sqlite => "sqlite",
        _ => return Err(JobError::permanent("backup", "unsupported database")),
    };
    let name = format!(
        "{PREFIX}{}.{kind}{SUFFIX}",
        now.format("%Y%m%dT%H%M%S%.3fZ")
    );
    let partial = dir.join(format!(".{name}.partial"));
    let written = write(services, kind, &dir, &name, &partial).await;
    let (size, sha256) = match written {
        Ok(done) => done,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err);
        }
    };
    let path = dir.join(&name);
    std::fs::rename(&partial, &path).or_retry("name the backup")?;
    services.backup_metrics.last_success.set(now.timestamp());
    services
        .backup_metrics
        .last_size
        .set(i64::try_from(size).unwrap_or(i64::MAX));
    let pruned = prune(&dir, config.backup.keep).or_retry("delete old backups")?;
    tracing::info!(file = %name, size, pruned, "database backup written");
    let backup = Backup { path, size, sha256 };
    if config.backup.send_to_telegram {
        announce(services, &name, &backup, now).await?;
    }
    Ok(backup)
}

/// Dumps the database into `partial` (gzip); returns its size and SHA-256.
async fn write(
    services: &Services,
    kind: &str,
    dir: &Path,
    name: &str,
    partial: &Path,
) -> Result<(u64, String), JobError> {
    let partial = partial.to_owned();
    if kind == "sqlite" {
        // A consistent copy first (the database stays in use), then compressed.
        let copy = dir.join(format!(".{name}.copy"));
        let _ = std::fs::remove_file(&copy);
        services
            .db
            .copy_sqlite_to(&copy)
            .await
            .or_retry("copy the SQLite database")?;
        let compressed = tokio::task::spawn_blocking({
            let copy = copy.clone();
            move || compress(std::fs::File::open(&copy)?, &partial)
        })
        .await
        .or_retry("compress task")?;
        let _ = std::fs::remove_file(&copy);
        return compressed.or_retry("compress the backup");
    }
    let program = services.config.backup.pg_dump.clone();
    let url = services.config.database_url();
    let target = pg_target(url.expose()).or_permanent("database.url")?;
    tokio::task::spawn_blocking(move || pg_dump(&program, &target, &partial))
        .await
        .or_retry("pg_dump task")?
}

/// Where `pg_dump` connects: the URL without its password, which goes in `PGPASSWORD` (never on the command
/// line, where other users of the host could read it).
struct PgTarget {
    url: String,
    password: Option<String>,
}

fn pg_target(url: &str) -> Result<PgTarget, String> {
    let mut parsed = url::Url::parse(url).map_err(|err| format!("not a URL: {err}"))?;
    let password = parsed
        .password()
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .map(|p| p.into_owned())
        })
        .transpose()
        .map_err(|_| "the password is not UTF-8".to_owned())?;
    parsed
        .set_password(None)
        .map_err(|()| "the URL cannot carry a password".to_owned())?;
    Ok(PgTarget {
        url: parsed.into(),
        password,
    })
}

/// Runs `pg_dump` (plain SQL, restorable by any role with `psql`) and compresses its output into `partial`.
fn pg_dump(program: &str, target: &PgTarget, partial: &Path) -> Result<(u64, String), JobError> {
    let mut command = Command::new(program);
    command
        .args(["--no-owner", "--no-privileges", "--format=plain"])
        .arg(format!("--dbname={}", target.url))
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    let mut child = command.spawn().map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => JobError::permanent(
            "pg_dump",
            format!("{program} not found: install the PostgreSQL client or set backup.pg_dump"),
        ),
        _ => JobError::retry("start pg_dump", err),
    })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| JobError::retry("pg_dump", "no output pipe"))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| JobError::retry("pg_dump", "no error pipe"))?;
    // Read the errors beside the dump, so a full error pipe never stalls pg_dump.
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let compressed = compress(stdout, partial);
    let status = child.wait().or_retry("wait for pg_dump")?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let reason = errors
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no message");
        return Err(JobError::retry(
            "pg_dump",
            format!("exited with {status}: {reason}"),
        ));
    }
    compressed.or_retry("compress the backup")
}

/// Gzips `source` into the new file `dest` (flushed to disk); returns its size and SHA-256.
fn compress(mut source: impl Read, dest: &Path) -> io::Result<(u64, String)> {
    let file = std::fs::File::create_new(dest)?;
    let mut encoder = GzEncoder::new(
        Hashing {
            inner: io::BufWriter::new(file),
            hash: Sha256::new(),
            size: 0,
        },
        Compression::default(),
    );
    io::copy(&mut source, &mut encoder)?;
    let mut hashing = encoder.finish()?;
    hashing.flush()?;
    let file = hashing.inner.into_inner().map_err(|err| err.into_error())?;
    file.sync_all()?;
    Ok((hashing.size, hex::encode(hashing.hash.finalize())))
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(&buf[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The backups in `dir`, oldest first.
fn backups(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Deletes all but the newest `keep` backups; returns how many it deleted.
fn prune(dir: &Path, keep: usize) -> io::Result<usize> {
    let all = backups(dir)?;
    let old = all.len().saturating_sub(keep);
    for path in &all[..old] {
        std::fs::remove_file(path)?;
    }
    Ok(old)
}

/// Records the staff notification announcing the backup and queues its delivery with the file.
async fn announce(
    services: &Services,
    name: &str,
    backup: &Backup,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let body = format!(
        "Database backup {name}\n{} · sha256 {}",
        human_size(backup.size),
        backup.sha256
    );
    let txn = services.db.conn().begin().await.or_retry("begin")?;
    let recorded = Notifications::on(&txn)
        .record_once(
            &format!("backup:{name}"),
            Audience::Staff,
            "backup",
            &body,
            now,
        )
        .await
        .or_retry("record the backup notice")?;
    if let Some(notification_id) = recorded {
        let job = DeliverBackup {
            notification_id,
            path: backup.path.to_string_lossy().into_owned(),
        };
        cybervpn_jobs::outbox::enqueue(&txn, &job, now)
            .await
            .or_retry("queue the backup delivery")?;
    }
    txn.commit().await.or_retry("commit")?;
    Ok(())
}

/// `1.4 MB`, `820 KB`, `93 B`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes;
    let mut tenths = 0;
    let mut unit = 0;
    while value >= 1024 && unit + 1 < UNITS.len() {
        tenths = (value % 1024) * 10 / 1024;
        value /= 1024;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} {}", UNITS[0])
    } else {
        format!("{value}.{tenths} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_decoded() {
        let target =
            pg_target("postgres://app:p%40ss%3Aw0rd@db:5432/cybervpn?sslmode=require").unwrap();
        assert_eq!(
            target.url,
            "postgres://app@db:5432/cybervpn?sslmode=require"
        );
        assert_eq!(target.password.as_deref(), Some("p@ss:w0rd"));
        let none = pg_target("postgres://postgres@127.0.0.1/test").unwrap();
        assert_eq!(none.password, None);
        assert!(pg_target("not a url").is_err());
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(93), "93 B");
        assert_eq!(human_size(820 * 1024), "820.0 KB");
        assert_eq!(human_size(1024 * 1024 + 400 * 1024), "1.3 MB");
    }

    #[test]
    fn pruning_keeps_the_newest_backups_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for stamp in ["20261101T030000Z", "20261102T030000Z", "20261103T030000Z"] {
            std::fs::write(dir.path().join(format!("cybervpn-{stamp}.sql.gz")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"keep me").unwrap();
        std::fs::write(
            dir.path().join(".cybervpn-20261104T030000Z.sql.gz.partial"),
            b"x",
        )
        .unwrap();
        assert_eq!(prune(dir.path(), 2).unwrap(), 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".cybervpn-20261104T030000Z.sql.gz.partial",
                "cybervpn-20261102T030000Z.sql.gz",
                "cybervpn-20261103T030000Z.sql.gz",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn compressed_output_round_trips_and_is_hashed_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.gz");
        let data = b"CREATE TABLE t (id int);\n".repeat(1000);
        let (size, sha) = compress(&data[..], &dest).unwrap();
        let on_disk = std::fs::read(&dest).unwrap();
        assert_eq!(size, on_disk.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&on_disk)));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&on_disk[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(compress(&data[..], &dest).is_err(), "never overwrites");
    }
}
