//! Online backup and restore of the embedded store (SPEC §11).
//!
//! A backup is a redb file holding the store's tables exactly as one read transaction saw
//! them — a consistent snapshot, never a copy of a file that is being written — plus a
//! manifest: the format, how many entries it holds and a SHA-256 digest over every entry in
//! order. Restoring opens it read-only (redb refuses a file that was not closed cleanly) and
//! recomputes the digest before it writes anything, so a truncated or altered backup is
//! refused and the target stays empty.
//!
//! The store file belongs to one process (redb locks it). When no server has it open, backup
//! reads it directly; when one does, `keygate-server backup` asks that server over its control
//! socket (`<data-dir>/control.sock`, readable and writable by the store's owner only), which
//! takes the snapshot in its own process and streams it back.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use redb::{
    Builder, Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use sha2::{Digest, Sha256};

use crate::store::{EXPIRES, EXPIRY, META, TABLE};

/// The backup file's manifest: `format`, `entries`, `digest`, `taken_at` (Unix seconds).
const MANIFEST: TableDefinition<&str, &str> = TableDefinition::new("keygate_backup");
/// What a backup file says it is; a restore refuses anything else.
pub const FORMAT: &str = "keygate-backup-1";
/// The control socket's name inside the data directory.
pub const SOCKET: &str = "control.sock";
/// The store file's name inside the data directory.
pub const STORE_FILE: &str = "keygate.redb";

/// What a backup or a restore handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Entries of every table (records, expiry entries, the format marker).
    pub entries: u64,
    /// SHA-256 over every entry in order, hex.
    pub digest: String,
    /// Size of the backup file.
    pub bytes: u64,
}

/// Why a backup or a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("store: {0}")]
    Store(String),
    #[error("{0} is not a Keygate backup or is damaged: {1}")]
    Damaged(PathBuf, String),
    #[error("{0} is not empty: restore writes into an empty or new directory only")]
    NotEmpty(PathBuf),
    #[error("{0} already exists: a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("no store in {0}")]
    NoStore(PathBuf),
    #[error("the running server refused: {0}")]
    Server(String),
}

fn store(e: impl std::fmt::Display) -> BackupError {
    BackupError::Store(e.to_string())
}

/// One entry of the store's tables, as [`walk`] hands them out.
enum Entry<'a> {
    Record(&'a str, &'a [u8]),
    Expires(&'a str, i64),
    Expiry(i64, &'a str),
    Meta(&'a str, u64),
}

impl Entry<'_> {
    /// Feeds the entry to `digest` unambiguously: a tag, then each part length-prefixed.
    fn feed(&self, digest: &mut Sha256) {
        let mut part = |bytes: &[u8]| {
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        };
        match self {
            Entry::Record(k, v) => {
                part(b"record");
                part(k.as_bytes());
                part(v);
            }
            Entry::Expires(k, at) => {
                part(b"expires");
                part(k.as_bytes());
                part(&at.to_le_bytes());
            }
            Entry::Expiry(at, k) => {
                part(b"expiry");
                part(&at.to_le_bytes());
                part(k.as_bytes());
            }
            Entry::Meta(k, v) => {
                part(b"meta");
                part(k.as_bytes());
                part(&v.to_le_bytes());
            }
        }
    }

    fn insert(&self, into: &WriteTransaction) -> Result<(), redb::Error> {
        match self {
            Entry::Record(k, v) => drop(into.open_table(TABLE)?.insert(*k, *v)?),
            Entry::Expires(k, at) => drop(into.open_table(EXPIRES)?.insert(*k, *at)?),
            Entry::Expiry(at, k) => drop(into.open_table(EXPIRY)?.insert((*at, *k), ())?),
            Entry::Meta(k, v) => drop(into.open_table(META)?.insert(*k, *v)?),
        }
        Ok(())
    }
}

/// Hands every entry of the store's tables, as `txn` sees them, to `each`, in a fixed order
/// (table by table, by key); a table the store does not have yet is empty.
fn walk(
    txn: &ReadTransaction,
    mut each: impl FnMut(Entry<'_>) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    fn missing(e: &redb::TableError) -> bool {
        matches!(e, redb::TableError::TableDoesNotExist(_))
    }
    match txn.open_table(META) {
        Ok(table) => {
            for entry in table.iter().map_err(store)? {
                let (k, v) = entry.map_err(store)?;
                each(Entry::Meta(k.value(), v.value()))?;
            }
        }
        Err(e) if missing(&e) => {}
        Err(e) => return Err(store(e)),
    }
    for entry in txn
        .open_table(TABLE)
        .map_err(store)?
        .iter()
        .map_err(store)?
    {
        let (k, v) = entry.map_err(store)?;
        each(Entry::Record(k.value(), v.value()))?;
    }
    for entry in txn
        .open_table(EXPIRES)
        .map_err(store)?
        .iter()
        .map_err(store)?
    {
        let (k, v) = entry.map_err(store)?;
        each(Entry::Expires(k.value(), v.value()))?;
    }
    for entry in txn
        .open_table(EXPIRY)
        .map_err(store)?
        .iter()
        .map_err(store)?
    {
        let (k, _) = entry.map_err(store)?;
        let (at, key) = k.value();
        each(Entry::Expiry(at, key))?;
    }
    Ok(())
}

/// A new file at `path` that only its owner can read (it holds key and password hashes).
fn private_file(path: &Path) -> Result<File, BackupError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Exists(path.to_owned()),
            _ => BackupError::Io(e),
        })
}

/// `file` with `suffix` added to its name, in the same directory (so a rename is atomic).
fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    file.with_file_name(name)
}

/// Copies every entry `txn` sees into `into`, returning how many and their digest.
fn copy(txn: &ReadTransaction, into: &WriteTransaction) -> Result<(u64, String), BackupError> {
    let mut digest = Sha256::new();
    let mut entries = 0u64;
    walk(txn, |entry| {
        entry.feed(&mut digest);
        entries += 1;
        entry.insert(into).map_err(store)
    })?;
    Ok((entries, hex(&digest.finalize())))
}

/// Gives back the space redb set aside while writing (a new file starts at about 1 MiB), and
/// closes it.
fn compact(mut db: Database) -> Result<(), BackupError> {
    while db.compact().map_err(store)? {}
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a snapshot of `db` — what one read transaction sees — to the new file `to`. The
/// file appears only once it is complete (written beside it, then renamed).
pub fn snapshot(db: &impl ReadableDatabase, to: &Path) -> Result<Summary, BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let txn = db.begin_read().map_err(store)?;
    let partial = beside(to, ".partial");
    let written = (|| {
        let file = private_file(&partial)?;
        let out = Builder::new().create_file(file).map_err(store)?;
        let write = out.begin_write().map_err(store)?;
        let (entries, digest) = copy(&txn, &write)?;
        {
            let mut manifest = write.open_table(MANIFEST).map_err(store)?;
            let taken_at = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
            for (k, v) in [
                ("format", FORMAT),
                ("entries", &entries.to_string()),
                ("digest", &digest),
                ("taken_at", &taken_at),
            ] {
                manifest.insert(k, v).map_err(store)?;
            }
        }
        write.commit().map_err(store)?;
        compact(out)?;
        std::fs::rename(&partial, to)?;
        let bytes = std::fs::metadata(to)?.len();
        Ok(Summary {
            entries,
            digest,
            bytes,
        })
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Checks the backup at `from` — that redb opens it as cleanly closed, its manifest, every
/// entry against the manifest's count and digest — without changing it, and returns what it
/// holds.
pub fn check(from: &Path) -> Result<Summary, BackupError> {
    unwound(from, || checked(from))
}

/// Runs `read`, which reads the file `from` with redb: redb asserts on some damage (a file
/// cut short panics while it opens) instead of answering an error, and a damaged backup is
/// an input like any other, so such a panic becomes [`BackupError::Damaged`].
fn unwound<T>(
    from: &Path,
    read: impl FnOnce() -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    // The error says what the panic's own report would: silence it meanwhile (the commands
    // that read backups run on one thread; a server never reads one).
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    std::panic::set_hook(report);
    read.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(BackupError::Damaged(
            from.to_owned(),
            format!("redb cannot read it ({why})"),
        ))
    })
}

fn checked(from: &Path) -> Result<Summary, BackupError> {
    let damaged = |e: &dyn std::fmt::Display| BackupError::Damaged(from.to_owned(), e.to_string());
    let bytes = std::fs::metadata(from)?.len();
    // Read-only: checking never changes the evidence. A backup is closed cleanly when it is
    // written, so one that would need repairing to open is damaged, and redb refuses it.
    let db = redb::ReadOnlyDatabase::open(from).map_err(|e| damaged(&e))?;
    let txn = db.begin_read().map_err(|e| damaged(&e))?;
    let manifest = txn.open_table(MANIFEST).map_err(|e| damaged(&e))?;
    let field = |name: &str| -> Result<String, BackupError> {
        manifest
            .get(name)
            .map_err(|e| damaged(&e))?
            .map(|v| v.value().to_owned())
            .ok_or_else(|| damaged(&format!("its manifest has no {name}")))
    };
    if field("format")? != FORMAT {
        return Err(damaged(&format!("its format is not {FORMAT}")));
    }
    let mut digest = Sha256::new();
    let mut entries = 0u64;
    walk(&txn, |entry| {
        entry.feed(&mut digest);
        entries += 1;
        Ok(())
    })?;
    let found = Summary {
        entries,
        digest: hex(&digest.finalize()),
        bytes,
    };
    if found.entries.to_string() != field("entries")? || found.digest != field("digest")? {
        return Err(damaged(&"its entries do not match its manifest"));
    }
    Ok(found)
}

/// Restores the backup at `from` into `dir`, which must be empty or not exist: checks it
/// whole first ([`check`]), then writes a fresh store beside its final name and renames it.
pub fn restore(from: &Path, dir: &Path) -> Result<Summary, BackupError> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    let summary = check(from)?;
    std::fs::create_dir_all(dir)?;
    let target = dir.join(STORE_FILE);
    let partial = beside(&target, ".partial");
    let written = unwound(from, || {
        let source = redb::ReadOnlyDatabase::open(from).map_err(store)?;
        let txn = source.begin_read().map_err(store)?;
        let out = Builder::new()
            .create_file(private_file(&partial)?)
            .map_err(store)?;
        let write = out.begin_write().map_err(store)?;
        let (entries, digest) = copy(&txn, &write)?;
        if (entries, digest.as_str()) != (summary.entries, summary.digest.as_str()) {
            return Err(BackupError::Damaged(
                from.to_owned(),
                "it changed while it was restored".into(),
            ));
        }
        write.commit().map_err(store)?;
        compact(out)?;
        std::fs::rename(&partial, &target)?;
        Ok(summary)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Backs up the store in `dir` to `to`: directly when no server has it open, else through the
/// running server's control socket.
pub fn backup(dir: &Path, to: &Path) -> Result<Summary, BackupError> {
    let file = dir.join(STORE_FILE);
    if !file.exists() {
        return Err(BackupError::NoStore(dir.to_owned()));
    }
    match redb::ReadOnlyDatabase::open(&file) {
        Ok(db) => snapshot(&db, to),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => through_server(dir, to),
        Err(e) => Err(store(e)),
    }
}

/// Asks the server that holds the store in `dir` for a snapshot and writes it to `to`,
/// checked before it gets its final name.
fn through_server(dir: &Path, to: &Path) -> Result<Summary, BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let mut socket = std::os::unix::net::UnixStream::connect(dir.join(SOCKET))?;
    socket.write_all(b"backup\n")?;
    let mut answer = BufReader::new(socket);
    let mut head = String::new();
    answer.read_line(&mut head)?;
    let Some(len) = head.trim_end().strip_prefix("ok ") else {
        let said = head.trim_end();
        return Err(BackupError::Server(
            said.strip_prefix("error ").unwrap_or(said).to_owned(),
        ));
    };
    let len: u64 = len
        .parse()
        .map_err(|_| BackupError::Server(format!("unreadable answer `{}`", head.trim_end())))?;
    let partial = beside(to, ".partial");
    let received = (|| {
        let mut file = private_file(&partial)?;
        let copied = std::io::copy(&mut answer.by_ref().take(len), &mut file)?;
        if copied != len {
            return Err(BackupError::Server(format!(
                "the snapshot ended after {copied} of {len} bytes"
            )));
        }
        file.sync_all()?;
        let summary = check(&partial)?;
        std::fs::rename(&partial, to)?;
        Ok(summary)
    })();
    if received.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    received
}

/// Serves the control socket of the store in `dir` until `stop`: each connection asks for a
/// snapshot (`backup\n`) and gets `ok <bytes>\n` and the file, or `error <why>\n`.
pub async fn serve_control(
    dir: PathBuf,
    store: crate::RedbStore,
    stop: impl std::future::Future<Output = ()>,
) {
    let path = dir.join(SOCKET);
    // This process holds the store's lock, so a socket left here is a dead server's.
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: online backup is unavailable");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(error = %e, "control socket permissions");
    }
    tokio::pin!(stop);
    let mut taken = 0u64;
    loop {
        let conn = tokio::select! {
            _ = &mut stop => break,
            conn = listener.accept() => conn,
        };
        let Ok((conn, _)) = conn else { continue };
        taken += 1;
        let partial = dir.join(format!("backup-{}-{taken}.snapshot", std::process::id()));
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(conn, store, &partial).await {
                tracing::warn!(error = %e, "backup over the control socket failed");
            }
            let _ = tokio::fs::remove_file(&partial).await;
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(
    conn: tokio::net::UnixStream,
    store: crate::RedbStore,
    partial: &Path,
) -> Result<(), BackupError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut conn = tokio::io::BufReader::new(conn);
    let mut asked = String::new();
    conn.read_line(&mut asked).await?;
    if asked.trim_end() != "backup" {
        conn.write_all(b"error unknown request\n").await?;
        return Ok(());
    }
    let to = partial.to_owned();
    let taken = tokio::task::spawn_blocking(move || store.snapshot(&to))
        .await
        .map_err(|e| BackupError::Store(e.to_string()))?;
    match taken {
        Ok(summary) => {
            tracing::info!(
                entries = summary.entries,
                bytes = summary.bytes,
                "backup taken"
            );
            conn.write_all(format!("ok {}\n", summary.bytes).as_bytes())
                .await?;
            let mut file = tokio::fs::File::open(partial).await?;
            tokio::io::copy(&mut file, &mut conn).await?;
            conn.flush().await?;
        }
        Err(e) => {
            let why = e.to_string().replace('\n', " ");
            conn.write_all(format!("error {why}\n").as_bytes()).await?;
        }
    }
    Ok(())
}
