//! The application's credential record: one SQLite database
//! (`/var/lib/credsync/credsync.db`, WAL, `synchronous=FULL`) holding, per
//! managed user, the Argon2id hash the application logs in against, the Linux
//! hash that can restore `/etc/shadow`, when and by whom it changed, the session
//! epoch and the must-change flag; the previous hashes (history); the
//! intents of changes in flight; and, on a fleet node, the version of each
//! user's fleet entry applied and the fleet's revision reached. `docs/schema.md` documents the tables for
//! applications written in any language.
#![forbid(unsafe_code)]

pub mod app_hash;
mod location;

use crate::account::UserName;
use crate::clock::Now;
use crate::fault;
use crate::system::crypt::LinuxHash;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, params};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const SCHEMA_VERSION: i64 = 3;

/// The intent table, named `$name` (schema 2 rebuilds it under another name).
macro_rules! intent_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (
    user        TEXT PRIMARY KEY NOT NULL,
    old_linux   TEXT NOT NULL,
    new_linux   TEXT NOT NULL,
    app_hash    TEXT,
    changed_day INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL,
    changed_by  TEXT NOT NULL,
    source      TEXT NOT NULL,
    must_change INTEGER NOT NULL,
    changed_by_auid INTEGER,
    fleet          TEXT,
    fleet_version  INTEGER,
    fleet_revision INTEGER
) STRICT;
"
        )
    };
}

/// A fleet node's state: the entry applied per user, the revision reached.
macro_rules! fleet_tables {
    () => {
        "
CREATE TABLE IF NOT EXISTS fleet_applied (
    user       TEXT PRIMARY KEY NOT NULL,
    fleet      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    revision   INTEGER NOT NULL,
    set_by     TEXT NOT NULL,
    linux_hash TEXT NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS fleet_progress (
    fleet    TEXT PRIMARY KEY NOT NULL,
    revision INTEGER NOT NULL
) STRICT;
"
    };
}

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS record (
    user          TEXT PRIMARY KEY NOT NULL,
    app_hash      TEXT,
    linux_hash    TEXT NOT NULL,
    changed_day   INTEGER NOT NULL,
    changed_at    INTEGER NOT NULL,
    changed_by    TEXT NOT NULL,
    source        TEXT NOT NULL,
    session_epoch INTEGER NOT NULL,
    must_change   INTEGER NOT NULL,
    locked        INTEGER NOT NULL DEFAULT 0,
    changed_by_auid INTEGER,
    pam_service   TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS history (
    user       TEXT NOT NULL,
    app_hash   TEXT,
    linux_hash TEXT NOT NULL,
    retired_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS history_by_user ON history (user, retired_at);
",
    intent_table!("intent"),
    fleet_tables!()
);

/// From schema 1: the account's lock state in its own column (schema 1 kept
/// an adopted `passwd -l` as a `!`-prefixed Linux hash), the login uid of
/// whoever made a change, and the PAM service a change came through. Old readers of the columns they know keep working.
const MIGRATE_FROM_1: &str = "
ALTER TABLE record ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE record ADD COLUMN changed_by_auid INTEGER;
ALTER TABLE record ADD COLUMN pam_service TEXT;
ALTER TABLE intent ADD COLUMN changed_by_auid INTEGER;
UPDATE record SET locked = 1, linux_hash = ltrim(linux_hash, '!') WHERE linux_hash LIKE '!%';
";

/// From schema 2: an intent may lack the Argon2id hash (`import --hashed`
/// without one: derived at the first `verify`, as after an adoption), and
/// carries the fleet entry it applies, so the version lands in the same
/// transaction as the record. A STRICT table's column can't drop NOT NULL in
/// place: the table is rebuilt, its rows kept. The fleet's own tables are new.
const MIGRATE_FROM_2: &str = concat!(
    intent_table!("intent_v3"),
    "
INSERT INTO intent_v3 (user, old_linux, new_linux, app_hash, changed_day, changed_at,
    changed_by, source, must_change, changed_by_auid)
    SELECT user, old_linux, new_linux, app_hash, changed_day, changed_at,
    changed_by, source, must_change, changed_by_auid FROM intent;
DROP TABLE intent;
ALTER TABLE intent_v3 RENAME TO intent;
",
    fleet_tables!()
);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "refusing to use the credential store: {path} {problem}; fix its ownership and mode (root, 0700 for the directory, 0600 for the file)"
    )]
    Unsafe { path: String, problem: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the credential store {path} is unreadable or corrupt ({detail}); restore it from a backup — credsync will not overwrite it"
    )]
    Corrupt { path: String, detail: String },
    #[error(
        "the credential store {path} was written by a newer credsync (schema {found}, this one knows {SCHEMA_VERSION})"
    )]
    TooNew { path: String, found: i64 },
    #[error("the credential store is busy; try again")]
    Busy,
    #[error("the credential store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// How a record came to hold its current password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `credsync passwd` / `set password`.
    Passwd,
    /// `credsync recover`.
    Recover,
    /// `credsync import`.
    Import,
    /// A change made in Linux outside credsync, taken over by `sync`.
    Adopted,
    /// A change made through PAM (`passwd`, `chpasswd`, a forced change at
    /// login), taken into the record by pam_credsync in the same operation.
    Pam,
    /// A fleet entry signed by the conductor, applied by `credsync-fleet`.
    Fleet,
    /// A self-service change through the service (`ChangePassword`): an
    /// application acting for the user, who proved the current password.
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Passwd => "passwd",
            Source::Recover => "recover",
            Source::Import => "import",
            Source::Adopted => "adopted",
            Source::Pam => "pam",
            Source::Api => "api",
            Source::Fleet => "fleet",
        }
    }

    fn parse(s: &str) -> Source {
        match s {
            "recover" => Source::Recover,
            "import" => Source::Import,
            "adopted" => Source::Adopted,
            "pam" => Source::Pam,
            "api" => Source::Api,
            "fleet" => Source::Fleet,
            _ => Source::Passwd,
        }
    }
}

/// Who changed a password, when, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub at: Now,
    pub by: String,
    pub source: Source,
    /// The login uid (`/proc/self/loginuid`) of the human behind the change:
    /// the administrator who ran `sudo`, not root. `None` when unset (a boot
    /// service, a login that set none).
    pub auid: Option<u32>,
}

/// The application's record of one managed user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub user: UserName,
    /// Argon2id PHC string; `None` after adopting a Linux change, until the
    /// first successful `verify` re-derives it from the password.
    pub app_hash: Option<String>,
    pub linux_hash: LinuxHash,
    /// UTC day of the change, comparable with shadow's field 3.
    pub changed_day: i64,
    pub changed_at: i64,
    pub changed_by: String,
    pub source: Source,
    /// Sessions the application issued with a lower epoch are logged out.
    /// Computed by the store when a record is written (previous + 1).
    pub session_epoch: i64,
    pub must_change: bool,
    /// The account is locked in Linux (`passwd -l`, `usermod -L`: a `!` in
    /// front of the hash). `linux_hash` never carries the lock: a lock or an
    /// unlock is not a new password.
    pub locked: bool,
    /// The login uid behind the change (see [`Provenance::auid`]).
    pub changed_by_auid: Option<u32>,
    /// The PAM service a change came through (`passwd`, `chpasswd`, `sshd`),
    /// for `Source::Pam`; `None` otherwise.
    pub pam_service: Option<String>,
}

impl Record {
    /// What shadow's password field holds for this record: the hash, with
    /// the lock in front when the account is locked.
    pub fn shadow_hash(&self) -> LinuxHash {
        if self.locked {
            LinuxHash::from_field(&format!("!{}", self.linux_hash.as_str()))
                .expect("a valid hash with a lock in front is valid")
        } else {
            self.linux_hash.clone()
        }
    }
}

/// A change in flight: recorded durably before `/etc/shadow` is replaced and
/// removed, with the record updated, in one transaction after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub user: UserName,
    pub old_linux: LinuxHash,
    pub new_linux: LinuxHash,
    /// `None` for a hash-only import: derived at the first `verify`.
    pub app_hash: Option<String>,
    pub provenance: Provenance,
    pub must_change: bool,
    /// The fleet entry this change applies, recorded with the record.
    pub fleet: Option<FleetStamp>,
}

/// Which fleet entry a change applies: the fleet, the entry's version, and
/// the etcd revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetStamp {
    pub fleet: String,
    pub version: u64,
    pub revision: i64,
}

/// The fleet entry a node last applied for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetApplied {
    pub user: UserName,
    pub fleet: String,
    pub version: u64,
    pub revision: i64,
    /// The conductor's user who set it.
    pub set_by: String,
    /// The Linux hash the entry set: shadow holding another means a local change.
    pub linux_hash: LinuxHash,
    pub applied_at: i64,
}

impl Intent {
    /// The record this change becomes once shadow holds it. The session epoch
    /// is the store's to bump; 0 here.
    pub fn as_record(&self) -> Record {
        Record {
            user: self.user.clone(),
            app_hash: self.app_hash.clone(),
            linux_hash: self.new_linux.clone(),
            changed_day: self.provenance.at.day,
            changed_at: self.provenance.at.unix_secs,
            changed_by: self.provenance.by.clone(),
            source: self.provenance.source,
            session_epoch: 0,
            must_change: self.must_change,
            locked: false,
            changed_by_auid: self.provenance.auid,
            pam_service: None,
        }
    }
}

/// What Linux changed around a record's own password, followed by `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub user: UserName,
    pub locked: bool,
    pub must_change: bool,
    /// The lock state is what changed (else only the forced change did).
    pub lock_changed: bool,
}

pub struct Store {
    conn: Connection,
    path: String,
}

impl Store {
    /// Opens (creating on first use) the store under `dir`, whose directory and
    /// file must belong to `owner`.
    pub fn open(dir: &Path, owner: u32) -> Result<Store, StoreError> {
        let db = location::prepare(dir, owner)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let (store, version) = Store::connect(&db, flags)?;
        let corrupt = |e| store.corrupt(e);
        store
            .conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(corrupt)?;
        store.conn.pragma_update(None, "synchronous", "FULL")?;
        if version < SCHEMA_VERSION {
            store.migrate().map_err(|e| {
                let _ = store.conn.execute_batch("ROLLBACK");
                store.corrupt(e)
            })?;
        }
        Ok(store)
    }

    /// Brings an older schema up to date in one transaction (a crash leaves
    /// the old schema whole). The version is read again under the write
    /// lock: another credsync may have migrated the store meanwhile.
    fn migrate(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let migration = match version {
            v if v >= SCHEMA_VERSION => String::new(),
            1 => format!("{MIGRATE_FROM_1} {MIGRATE_FROM_2}"),
            2 => MIGRATE_FROM_2.to_owned(),
            _ => SCHEMA.to_owned(),
        };
        if !migration.is_empty() {
            self.conn.execute_batch(&format!(
                "{migration} PRAGMA user_version = {SCHEMA_VERSION};"
            ))?;
        }
        self.conn.execute_batch("COMMIT")
    }

    /// Opens an existing store read-only, for commands that only look
    /// (`status`, `sync --dry-run`); `None` when there is none yet. Creates,
    /// migrates and writes nothing.
    pub fn open_existing(dir: &Path, owner: u32) -> Result<Option<Store>, StoreError> {
        let Some(db) = location::existing(dir, owner)? else {
            return Ok(None);
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let (store, version) = Store::connect(&db, flags)?;
        Ok((version > 0).then_some(store))
    }

    /// Opens the file and reads its schema version, refusing a newer one.
    fn connect(db: &Path, flags: OpenFlags) -> Result<(Store, i64), StoreError> {
        let path = db.display().to_string();
        let conn = Connection::open_with_flags(db, flags)?;
        conn.busy_timeout(Duration::from_secs(15))?;
        let store = Store { conn, path };
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| store.corrupt(e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: store.path,
                found: version,
            });
        }
        // SQLite reads pages lazily: damage past the first ones would show
        // only when a statement reaches it, possibly after /etc/shadow was
        // replaced. Look at every page, and at the tables, before any write:
        // once per command — a change opens the store to judge the password
        // and again under the locks, and reading 100,000 records' pages twice
        // was a third of its time.
        let file = std::fs::metadata(db).ok().map(|m| {
            [
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime() as u64,
                m.mtime_nsec() as u64,
            ]
        });
        if file.is_some_and(|f| checked_files().contains(&f)) {
            return Ok((store, version));
        }
        let check: String = store
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| store.corrupt(e))?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: store.path,
                detail: check,
            });
        }
        // Every schema so far has the same three tables.
        if version >= 1 {
            let tables: i64 = store
                .conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'
                     AND name IN ('record', 'history', 'intent')",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| store.corrupt(e))?;
            if tables != 3 {
                return Err(StoreError::Corrupt {
                    path: store.path,
                    detail: "credsync's tables are missing".into(),
                });
            }
        }
        if let Some(file) = file
            && version == SCHEMA_VERSION
        {
            checked_files().push(file);
        }
        Ok((store, version))
    }

    /// Only SQLite's own verdict makes a store corrupt: a full or failing
    /// disk while opening it is an I/O failure, not a reason to tell the
    /// administrator to restore a backup.
    fn corrupt(&self, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: e.to_string(),
                }
            }
            _ => StoreError::Sqlite(e),
        }
    }

    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM record ORDER BY user")?;
        let rows = stmt.query_map([], record_from_row)?;
        Ok(rows
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    pub fn record(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM record WHERE user = ?1")?;
        Ok(stmt
            .query_row([user.as_str()], record_from_row)
            .optional()?
            .flatten())
    }

    pub fn intents(&self) -> Result<Vec<Intent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM intent ORDER BY user")?;
        let rows = stmt.query_map([], intent_from_row)?;
        Ok(rows
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Every earlier password of `user`, newest first: the Argon2id hash
    /// when the record had one, and the Linux hash it replaced (a password
    /// credsync took over at enrolment or adopted from Linux has only that).
    pub fn history_entries(
        &self,
        user: &UserName,
    ) -> Result<Vec<(Option<String>, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT app_hash, linux_hash FROM history WHERE user = ?1
             ORDER BY retired_at DESC, rowid DESC",
        )?;
        let rows = stmt.query_map([user.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Step 1 of a change: the intents, durable before shadow is touched.
    pub fn record_intents(&mut self, intents: &[Intent]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO intent (user, old_linux, new_linux, app_hash,
                 changed_day, changed_at, changed_by, source, must_change, changed_by_auid,
                 fleet, fleet_version, fleet_revision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for i in intents {
                let fleet = i.fleet.as_ref();
                insert.execute(params![
                    i.user.as_str(),
                    i.old_linux.as_str(),
                    i.new_linux.as_str(),
                    i.app_hash,
                    i.provenance.at.day,
                    i.provenance.at.unix_secs,
                    i.provenance.by,
                    i.provenance.source.as_str(),
                    i.must_change,
                    i.provenance.auid,
                    fleet.map(|f| &f.fleet),
                    fleet.map(|f| version_column(f.version)),
                    fleet.map(|f| f.revision),
                ])?;
            }
        }
        Ok(tx.commit()?)
    }

    /// Step 3 of a change (shadow now holds the new hashes): each intent becomes
    /// the user's record, the old hashes go to history, the session epoch is
    /// bumped and the intent is cleared — all in one transaction.
    pub fn complete_intents(&mut self, intents: &[Intent]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for i in intents {
            replace_record(&tx, &i.as_record(), Some(&i.old_linux), i.provenance.at)?;
            if let Some(stamp) = &i.fleet {
                note_fleet_applied(&tx, i, stamp)?;
            }
            tx.prepare_cached("DELETE FROM intent WHERE user = ?1")?
                .execute([i.user.as_str()])?;
        }
        fault::reached("record-uncommitted");
        Ok(tx.commit()?)
    }

    /// A change that never reached shadow: forget it.
    pub fn abandon_intents(&mut self, intents: &[Intent]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for i in intents {
            tx.prepare_cached("DELETE FROM intent WHERE user = ?1")?
                .execute([i.user.as_str()])?;
        }
        Ok(tx.commit()?)
    }

    /// Takes over a password set in Linux outside credsync. The Argon2id hash is
    /// unknown until the user next proves the password to `verify`.
    pub fn adopt(&mut self, adoptions: &[Record], at: Now) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for record in adoptions {
            replace_record(&tx, record, Some(&record.linux_hash), at)?;
        }
        Ok(tx.commit()?)
    }

    /// A change PAM made to `/etc/shadow` a moment ago, taken into the record
    /// (pam_credsync): the replaced hashes go to history and the epoch goes
    /// up, as for any change. A user's first record has no replaced hash to
    /// keep: PAM has overwritten it already.
    pub fn record_change(&mut self, record: &Record, at: Now) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        replace_record(&tx, record, None, at)?;
        Ok(tx.commit()?)
    }

    /// Follows a lock, an unlock or a forced change made in Linux on the
    /// record's own password: only those columns change (no history, the
    /// same password and provenance), and a lock ends the user's application
    /// sessions (the epoch goes up). One transaction.
    pub fn follow_flags(&mut self, changes: &[FlagChange]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for change in changes {
            tx.prepare_cached(
                "UPDATE record SET locked = ?2, must_change = ?3,
                 session_epoch = session_epoch + ?4 WHERE user = ?1",
            )?
            .execute(params![
                change.user.as_str(),
                change.locked,
                change.must_change,
                i64::from(change.lock_changed && change.locked),
            ])?;
        }
        Ok(tx.commit()?)
    }

    /// Whether `hash` is one the record has replaced: seeing it in shadow again
    /// means shadow was rolled back, whatever its last-change day says.
    pub fn has_replaced(&self, user: &UserName, hash: &LinuxHash) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM history WHERE user = ?1 AND linux_hash = ?2 LIMIT 1")?;
        Ok(stmt.exists(params![user.as_str(), hash.as_str()])?)
    }

    /// The fleet entry last applied for each user, by name.
    pub fn fleet_applied(&self) -> Result<Vec<FleetApplied>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM fleet_applied ORDER BY user")?;
        let rows = stmt.query_map([], fleet_applied_from_row)?;
        Ok(rows
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    /// An entry whose hashes the stores hold already (a node that applied it
    /// before a crash, or a reconcile of an unchanged password): only the
    /// version is recorded, with nothing rewritten and no session ended.
    pub fn note_fleet_current(&mut self, intent: &Intent) -> Result<(), StoreError> {
        let Some(stamp) = &intent.fleet else {
            return Ok(());
        };
        let tx = self.conn.transaction()?;
        note_fleet_applied(&tx, intent, stamp)?;
        Ok(tx.commit()?)
    }

    /// The etcd revision this node has read the fleet's entries up to.
    pub fn fleet_revision(&self, fleet: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT revision FROM fleet_progress WHERE fleet = ?1")?
            .query_row([fleet], |r| r.get(0))
            .optional()?)
    }

    /// Records that every entry up to `revision` was handled (applied,
    /// current, or refused and reported). Never moves backwards.
    pub fn set_fleet_revision(&mut self, fleet: &str, revision: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO fleet_progress VALUES (?1, ?2) ON CONFLICT (fleet)
                 DO UPDATE SET revision = max(revision, excluded.revision)",
            )?
            .execute(params![fleet, revision])?;
        Ok(())
    }

    /// Fills in the Argon2id hash of an adopted record, if the record still holds
    /// the Linux hash the password was checked against.
    pub fn rederive(
        &mut self,
        user: &UserName,
        checked: &LinuxHash,
        app_hash: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE record SET app_hash = ?1 WHERE user = ?2 AND linux_hash = ?3 AND app_hash IS NULL",
            params![app_hash, user.as_str(), checked.as_str()],
        )?;
        Ok(())
    }
}

/// The database files this process has checked page by page, as (device,
/// inode, size, modification time): a file written or put in the store's
/// place since is checked anew.
fn checked_files() -> std::sync::MutexGuard<'static, Vec<[u64; 5]>> {
    static CHECKED: Mutex<Vec<[u64; 5]>> = Mutex::new(Vec::new());
    CHECKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Replaces (or creates) a record: the previous hashes move to history and the
/// session epoch goes up by one, which signs the user out of the application.
/// A user's first record keeps `enrolled_from`, the shadow hash it replaced, in
/// history too, so a rollback to before the enrolment is recognised (when it
/// is known).
fn replace_record(
    tx: &Transaction<'_>,
    record: &Record,
    enrolled_from: Option<&LinuxHash>,
    at: Now,
) -> Result<(), StoreError> {
    let previous: Option<(Option<String>, String, i64)> = tx
        .prepare_cached("SELECT app_hash, linux_hash, session_epoch FROM record WHERE user = ?1")?
        .query_row([record.user.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let (retired, epoch) = match previous {
        Some((app_hash, linux_hash, epoch)) => (Some((app_hash, linux_hash)), epoch + 1),
        None => (enrolled_from.map(|h| (None, h.as_str().to_owned())), 1),
    };
    if let Some((retired_app, retired_linux)) = retired {
        tx.prepare_cached("INSERT INTO history VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![
                record.user.as_str(),
                retired_app,
                retired_linux,
                at.unix_secs
            ])?;
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO record (user, app_hash, linux_hash, changed_day, changed_at,
         changed_by, source, session_epoch, must_change, locked, changed_by_auid, pam_service)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        record.user.as_str(),
        record.app_hash,
        record.linux_hash.as_str(),
        record.changed_day,
        record.changed_at,
        record.changed_by,
        record.source.as_str(),
        epoch,
        record.must_change,
        record.locked,
        record.changed_by_auid,
        record.pam_service,
    ])?;
    Ok(())
}

/// The fleet entry's version, and the revision it came with, in the same
/// transaction as the record (or alone, for an entry already held).
fn note_fleet_applied(
    tx: &Transaction<'_>,
    intent: &Intent,
    stamp: &FleetStamp,
) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR REPLACE INTO fleet_applied VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
        .execute(params![
            intent.user.as_str(),
            stamp.fleet,
            version_column(stamp.version),
            stamp.revision,
            intent.provenance.by,
            intent.new_linux.as_str(),
            intent.provenance.at.unix_secs,
        ])?;
    tx.prepare_cached(
        "INSERT INTO fleet_progress VALUES (?1, ?2) ON CONFLICT (fleet)
         DO UPDATE SET revision = max(revision, excluded.revision)",
    )?
    .execute(params![stamp.fleet, stamp.revision])?;
    Ok(())
}

/// SQLite integers are signed: versions beyond `i64::MAX` are refused where
/// entries are parsed, so this never saturates in practice.
fn version_column(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn fleet_applied_from_row(r: &Row<'_>) -> rusqlite::Result<Option<FleetApplied>> {
    let user: String = r.get("user")?;
    let linux: String = r.get("linux_hash")?;
    let (Ok(user), Some(linux_hash)) = (UserName::parse(&user), LinuxHash::from_field(&linux))
    else {
        return Ok(None);
    };
    Ok(Some(FleetApplied {
        user,
        fleet: r.get("fleet")?,
        version: u64::try_from(r.get::<_, i64>("version")?).unwrap_or(0),
        revision: r.get("revision")?,
        set_by: r.get("set_by")?,
        linux_hash,
        applied_at: r.get("applied_at")?,
    }))
}

/// Rows whose user or hash no longer validates (edited by hand) are skipped:
/// credsync never writes such a value into a file.
///
/// A schema-1 store read without migrating (`status` opens it read-only)
/// lacks the newer columns; its lock is the `!` in front of the hash.
fn record_from_row(r: &Row<'_>) -> rusqlite::Result<Option<Record>> {
    let user: String = r.get("user")?;
    let linux: String = r.get("linux_hash")?;
    let unlocked = linux.trim_start_matches('!');
    let (Ok(user), Some(linux_hash)) = (UserName::parse(&user), LinuxHash::from_field(unlocked))
    else {
        return Ok(None);
    };
    let locked = unlocked.len() != linux.len() || optional_column(r, "locked")?.unwrap_or(false);
    Ok(Some(Record {
        user,
        app_hash: r.get("app_hash")?,
        linux_hash,
        changed_day: r.get("changed_day")?,
        changed_at: r.get("changed_at")?,
        changed_by: r.get("changed_by")?,
        source: Source::parse(&r.get::<_, String>("source")?),
        session_epoch: r.get("session_epoch")?,
        must_change: r.get("must_change")?,
        locked,
        changed_by_auid: optional_column(r, "changed_by_auid")?.flatten(),
        pam_service: optional_column(r, "pam_service")?.flatten(),
    }))
}

/// A column a schema-1 store doesn't have: `None` there.
fn optional_column<T: rusqlite::types::FromSql>(
    r: &Row<'_>,
    name: &str,
) -> rusqlite::Result<Option<T>> {
    match r.get(name) {
        Ok(value) => Ok(Some(value)),
        Err(rusqlite::Error::InvalidColumnName(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn intent_from_row(r: &Row<'_>) -> rusqlite::Result<Option<Intent>> {
    let user: String = r.get("user")?;
    let old: String = r.get("old_linux")?;
    let new: String = r.get("new_linux")?;
    let (Ok(user), Some(old_linux), Some(new_linux)) = (
        UserName::parse(&user),
        LinuxHash::from_field(&old),
        LinuxHash::from_field(&new),
    ) else {
        return Ok(None);
    };
    Ok(Some(Intent {
        user,
        old_linux,
        new_linux,
        app_hash: r.get("app_hash")?,
        provenance: Provenance {
            at: Now {
                day: r.get("changed_day")?,
                unix_secs: r.get("changed_at")?,
            },
            by: r.get("changed_by")?,
            source: Source::parse(&r.get::<_, String>("source")?),
            auid: optional_column(r, "changed_by_auid")?.flatten(),
        },
        must_change: r.get("must_change")?,
        fleet: fleet_stamp_from_row(r)?,
    }))
}

/// The fleet columns of an intent row (absent before schema 3).
fn fleet_stamp_from_row(r: &Row<'_>) -> rusqlite::Result<Option<FleetStamp>> {
    let fleet: Option<String> = optional_column(r, "fleet")?.flatten();
    let version: Option<i64> = optional_column(r, "fleet_version")?.flatten();
    let revision: Option<i64> = optional_column(r, "fleet_revision")?.flatten();
    Ok(match (fleet, version, revision) {
        (Some(fleet), Some(version), Some(revision)) => Some(FleetStamp {
            fleet,
            version: u64::try_from(version).unwrap_or(0),
            revision,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(tmp: &tempfile::TempDir) -> Store {
        Store::open(&tmp.path().join("store"), nix::unistd::geteuid().as_raw()).unwrap()
    }

    fn intent(user: &str, old: &str, new: &str, day: i64) -> Intent {
        Intent {
            user: UserName::parse(user).unwrap(),
            old_linux: LinuxHash::from_field(old).unwrap(),
            new_linux: LinuxHash::from_field(new).unwrap(),
            app_hash: Some(format!("$argon2id$for-{new}")),
            provenance: Provenance {
                at: Now::at(day * 86_400),
                by: "root".into(),
                source: Source::Passwd,
                auid: None,
            },
            must_change: false,
            fleet: None,
        }
    }

    /// A schema-1 store (a `passwd -l` adopted as a `!` hash) opens as
    /// schema 2: the lock in its own column, the password without it, a
    /// change in flight kept; read-only readers see the same before that.
    #[test]
    fn a_schema_one_store_is_migrated_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let owner = nix::unistd::geteuid().as_raw();
        drop(open(&tmp));
        let db = dir.join("credsync.db");
        {
            let old = Connection::open(&db).unwrap();
            old.execute_batch(
                "DROP TABLE record; DROP TABLE intent;
                 CREATE TABLE record (user TEXT PRIMARY KEY NOT NULL, app_hash TEXT,
                   linux_hash TEXT NOT NULL, changed_day INTEGER NOT NULL,
                   changed_at INTEGER NOT NULL, changed_by TEXT NOT NULL,
                   source TEXT NOT NULL, session_epoch INTEGER NOT NULL,
                   must_change INTEGER NOT NULL) STRICT;
                 CREATE TABLE intent (user TEXT PRIMARY KEY NOT NULL, old_linux TEXT NOT NULL,
                   new_linux TEXT NOT NULL, app_hash TEXT NOT NULL, changed_day INTEGER NOT NULL,
                   changed_at INTEGER NOT NULL, changed_by TEXT NOT NULL, source TEXT NOT NULL,
                   must_change INTEGER NOT NULL) STRICT;
                 INSERT INTO record VALUES ('alice', NULL, '!$y$a', 1, 1, 'linux', 'adopted', 3, 0);
                 INSERT INTO record VALUES ('bob', '$argon2id$b', '$y$b', 1, 1, 'root', 'recover', 1, 1);
                 INSERT INTO intent VALUES ('bob', '$y$b', '$y$c', '$argon2id$c', 2, 2, 'bob', 'passwd', 0);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let alice = UserName::parse("alice").unwrap();
        let reader = Store::open_existing(&dir, owner).unwrap().unwrap();
        let seen = reader.record(&alice).unwrap().unwrap();
        assert_eq!((seen.linux_hash.as_str(), seen.locked), ("$y$a", true));
        drop(reader);

        let store = Store::open(&dir, owner).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let alice = store.record(&alice).unwrap().unwrap();
        assert_eq!(
            (alice.linux_hash.as_str(), alice.locked, alice.session_epoch),
            ("$y$a", true, 3)
        );
        assert_eq!(alice.shadow_hash().as_str(), "!$y$a");
        let bob = store
            .record(&UserName::parse("bob").unwrap())
            .unwrap()
            .unwrap();
        assert!(!bob.locked && bob.must_change && bob.changed_by_auid.is_none());
        assert_eq!(store.intents().unwrap().len(), 1);
    }

    #[test]
    fn an_intent_survives_until_completed() {
        let tmp = tempfile::tempdir().unwrap();
        let i = intent("alice", "$6$old", "$6$new", 20_000);
        open(&tmp).record_intents(std::slice::from_ref(&i)).unwrap();
        // A new connection (as after a crash) still sees it.
        let mut store = open(&tmp);
        assert_eq!(store.intents().unwrap(), vec![i.clone()]);
        store.complete_intents(&[i]).unwrap();
        assert!(store.intents().unwrap().is_empty());
        let record = store
            .record(&UserName::parse("alice").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(record.linux_hash.as_str(), "$6$new");
        assert_eq!(record.changed_day, 20_000);
        assert_eq!(record.session_epoch, 1);
    }

    #[test]
    fn each_change_bumps_the_epoch_and_keeps_history() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        for (n, new) in ["$6$a", "$6$b", "$6$c"].iter().enumerate() {
            store
                .complete_intents(&[intent("bob", "$6$x", new, 20_000 + n as i64)])
                .unwrap();
        }
        let bob = UserName::parse("bob").unwrap();
        assert_eq!(store.record(&bob).unwrap().unwrap().session_epoch, 3);
        let earlier: Vec<(Option<String>, String)> = store.history_entries(&bob).unwrap();
        assert_eq!(
            earlier,
            [
                (Some("$argon2id$for-$6$b".to_owned()), "$6$b".to_owned()),
                (Some("$argon2id$for-$6$a".to_owned()), "$6$a".to_owned()),
                (None, "$6$x".to_owned()),
            ]
        );
    }

    #[test]
    fn rederive_only_fills_an_adopted_record_still_on_that_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let carol = UserName::parse("carol").unwrap();
        let adopted = Record {
            user: carol.clone(),
            app_hash: None,
            linux_hash: LinuxHash::from_field("$y$adopted").unwrap(),
            changed_day: 20_001,
            changed_at: 0,
            changed_by: "linux".into(),
            source: Source::Adopted,
            session_epoch: 0,
            must_change: false,
            locked: false,
            changed_by_auid: None,
            pam_service: None,
        };
        store
            .adopt(std::slice::from_ref(&adopted), Now::at(0))
            .unwrap();
        store
            .rederive(
                &carol,
                &LinuxHash::from_field("$y$other").unwrap(),
                "$argon2id$x",
            )
            .unwrap();
        assert_eq!(store.record(&carol).unwrap().unwrap().app_hash, None);
        store
            .rederive(&carol, &adopted.linux_hash, "$argon2id$x")
            .unwrap();
        assert_eq!(
            store.record(&carol).unwrap().unwrap().app_hash.as_deref(),
            Some("$argon2id$x")
        );
    }

    /// The page check runs once per command, but a file changed since —
    /// damaged in place here, after a first check passed — is checked again.
    #[test]
    fn a_store_changed_since_its_check_is_checked_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        drop(open(&tmp));
        drop(open(&tmp)); // checked, and remembered
        let db = dir.join(location::DB_FILE);
        let _ = std::fs::remove_file(dir.join("credsync.db-wal"));
        let _ = std::fs::remove_file(dir.join("credsync.db-shm"));
        let mut bytes = std::fs::read(&db).unwrap();
        bytes[100..].fill(0x5a);
        std::fs::write(&db, &bytes).unwrap();
        let err = Store::open(&dir, nix::unistd::geteuid().as_raw())
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_corrupt_database_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        drop(open(&tmp));
        let db = dir.join(location::DB_FILE);
        let _ = std::fs::remove_file(dir.join("credsync.db-wal"));
        let _ = std::fs::remove_file(dir.join("credsync.db-shm"));
        let garbage = vec![0x5au8; 8192];
        std::fs::write(&db, &garbage).unwrap();
        let err = Store::open(&dir, nix::unistd::geteuid().as_raw())
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&db).unwrap(), garbage);
    }
}
