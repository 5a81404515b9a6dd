//! Connection handling, dialect differences, migrations, and the small query-building helpers
//! every entity module uses.

use mlox_core::{Error, Result};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Arguments, Row};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// How the store is reached and what it writes into new experiments.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://user@host:port/db`.
    pub uri: String,
    /// Root under which new experiments get their artifact location, e.g. `mlflow-artifacts:`
    /// when the server proxies artifacts.
    pub default_artifact_root: String,
    pub max_connections: u32,
}

#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(crate) read: AnyPool,
    /// SQLite allows one writer at a time; a one-connection pool queues writers in-process
    /// instead of letting them spin on `SQLITE_BUSY`. PostgreSQL gets a full pool.
    pub(crate) write: AnyPool,
    pub(crate) dialect: Dialect,
    pub(crate) artifact_root: String,
    /// Woken whenever a registry change queues a webhook event.
    pub(crate) outbox_signal: std::sync::Arc<tokio::sync::Notify>,
    /// On SQLite, run writes go through one task that commits them in groups.
    pub(crate) log_queue: Option<tokio::sync::mpsc::Sender<crate::logging::LogJob>>,
    /// What the SQLite writer has done, for operators (`mlox server --expose-prometheus`).
    pub(crate) log_writer: std::sync::Arc<crate::logging::LogWriterCounters>,
    /// Points written per metric series since its last seal (see `metric_history`).
    pub(crate) seal_counts: std::sync::Arc<crate::metric_history::SealCounts>,
    /// When PostgreSQL's run-search tables were last seen to have planner statistics, and
    /// whether they had them (see `SqlStore::planner_has_statistics`).
    pub(crate) planner_statistics:
        std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, bool)>>>,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "tracking",
        include_str!("../migrations/0001_tracking.sql"),
    ),
    (
        2,
        "registry",
        include_str!("../migrations/0002_registry.sql"),
    ),
    (
        3,
        "trace_search",
        include_str!("../migrations/0003_trace_search.sql"),
    ),
    (4, "genai", include_str!("../migrations/0004_genai.sql")),
    (
        5,
        "evaluation_datasets",
        include_str!("../migrations/0005_evaluation_datasets.sql"),
    ),
    (6, "gateway", include_str!("../migrations/0006_gateway.sql")),
    (
        7,
        "gateway_budgets",
        include_str!("../migrations/0007_gateway_budgets.sql"),
    ),
    (
        8,
        "metric_blocks",
        include_str!("../migrations/0008_metric_blocks.sql"),
    ),
];

/// The newest schema this build knows.
pub const SCHEMA_VERSION: i64 = 8;

pub(crate) fn db_err(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        return Error::already_exists(db.message().to_string());
    }
    Error::internal(format!("database error: {err}"))
}

pub(crate) fn to_sqlx_url(uri: &str) -> Result<(Dialect, String)> {
    if let Some(path) = uri.strip_prefix("sqlite:///") {
        let path = if path.is_empty() { "mlruns.db" } else { path };
        if path == ":memory:" {
            return Ok((Dialect::Sqlite, "sqlite::memory:".to_string()));
        }
        let encoded: String = path
            .chars()
            .map(|c| match c {
                '?' => "%3F".to_string(),
                '#' => "%23".to_string(),
                ' ' => "%20".to_string(),
                c => c.to_string(),
            })
            .collect();
        return Ok((Dialect::Sqlite, format!("sqlite://{encoded}?mode=rwc")));
    }
    if uri == "sqlite://" || uri == "sqlite::memory:" {
        return Ok((Dialect::Sqlite, "sqlite::memory:".to_string()));
    }
    for prefix in [
        "postgresql://",
        "postgres://",
        "postgresql+psycopg2://",
        "postgresql+psycopg://",
    ] {
        if let Some(rest) = uri.strip_prefix(prefix) {
            return Ok((Dialect::Postgres, format!("postgres://{rest}")));
        }
    }
    Err(Error::invalid(format!(
        "Unsupported backend store URI '{uri}': use sqlite:///<path> or postgresql://<user>@<host>:<port>/<database>"
    )))
}

/// The one writer connection keeps the pages logging touches (the newest leaf of every
/// metric of every active run) in its own cache, and checkpoints the WAL less often: a leaf
/// page rewritten by many commits is then copied into the database once rather than per
/// checkpoint. Readers serve searches and history reads from smaller caches.
const SQLITE_WRITER_PRAGMAS: &[&str] = &[
    "PRAGMA cache_size = -65536",
    "PRAGMA wal_autocheckpoint = 16384",
];
const SQLITE_READER_PRAGMAS: &[&str] = &["PRAGMA cache_size = -8192"];

/// Pages logging dirtied between two rounds of the WAL checkpointer (16 MiB of WAL).
const CHECKPOINT_EVERY_PAGES: usize = 4096;

/// The log queue's side of the WAL checkpointer. Under heavy logging the writer's own
/// checkpoints (a copy of every changed page and two fsyncs, inside a commit) stalled every
/// request queued behind it (a 64 MiB WAL took 90 ms to fsync). Once logging has dirtied
/// about 4096 pages, a task on a connection of its own copies the WAL into the database beside
/// the writer (a passive checkpoint never blocks the writer or readers), so the WAL is mostly
/// copied before the writer's own checkpoint comes due at 16k pages. Pages, not rows, count:
/// ten small calls on ten runs dirty more pages than one call of a thousand points. Light
/// logging seldom starts a round: each costs fsyncs, and the writer's own checkpoints are
/// cheap then.
pub(crate) struct CheckpointLink {
    due: tokio::sync::mpsc::Sender<()>,
    pages_since: usize,
}

impl CheckpointLink {
    fn start(pool: AnyPool) -> Self {
        let (due, rounds) = tokio::sync::mpsc::channel(1);
        tokio::spawn(checkpoint_wal(pool, rounds));
        CheckpointLink {
            due,
            pages_since: 0,
        }
    }

    /// Called by the writer after each commit with about how many pages it dirtied.
    pub(crate) fn committed(&mut self, pages: usize) {
        self.pages_since += pages;
        if self.pages_since >= CHECKPOINT_EVERY_PAGES {
            self.pages_since = 0;
            // Full means a round is already due.
            let _ = self.due.try_send(());
        }
    }
}

/// The checkpointer's rounds; it ends when the log queue does.
async fn checkpoint_wal(pool: AnyPool, mut rounds: tokio::sync::mpsc::Receiver<()>) {
    while rounds.recv().await.is_some() {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!("WAL checkpoint failed (the writer's own go on): {e}");
        }
    }
}

impl SqlStore {
    /// Starts a statement in this store's dialect.
    pub(crate) fn sql(&self, text: &str) -> Sql {
        Sql::for_dialect(self.dialect, text)
    }

    /// Opens the store. An empty database gets the current schema; one at an older schema is
    /// refused with the command that upgrades it, because replicas still running the old
    /// version may share it (the operator decides when, as with `mlflow db upgrade`).
    pub async fn open(options: StoreOptions) -> Result<Self> {
        Self::open_with(options, SchemaPolicy::CreateIfEmpty).await
    }

    /// Opens the store and brings an older schema up to this version (`mlox db upgrade`).
    pub async fn open_and_upgrade(options: StoreOptions) -> Result<Self> {
        Self::open_with(options, SchemaPolicy::Upgrade).await
    }

    async fn open_with(options: StoreOptions, policy: SchemaPolicy) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = to_sqlx_url(&options.uri)?;
        // Before any connection that could write (even SQLite's journal mode is a write).
        if let Some(foreign) = crate::maintenance::foreign_schema(&options.uri).await? {
            return Err(Error::invalid_state(foreign.refusal(&options.uri)));
        }
        let memory = url.contains(":memory:");
        let make_pool = |max: u32, writer: bool| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(if memory { 1 } else { 0 })
                .idle_timeout(if memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if memory {
                    None
                } else {
                    Some(Duration::from_secs(3600))
                })
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if dialect == Dialect::Sqlite {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA busy_timeout = 10000",
                                "PRAGMA temp_store = MEMORY",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            let sized = if writer {
                                SQLITE_WRITER_PRAGMAS
                            } else {
                                SQLITE_READER_PRAGMAS
                            };
                            for &pragma in sized {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let write_max = match dialect {
            Dialect::Sqlite => 1,
            Dialect::Postgres => options.max_connections.max(2),
        };
        // An in-memory SQLite database lives in one connection; share it for reads and writes.
        let cannot_open = |e: sqlx::Error| {
            Error::invalid(format!(
                "cannot open backend store '{}': {e}",
                redact_uri(&options.uri)
            ))
        };
        let write = make_pool(write_max, true)
            .connect(&url)
            .await
            .map_err(cannot_open)?;
        let read = if memory {
            write.clone()
        } else {
            make_pool(options.max_connections.max(2), false)
                .connect(&url)
                .await
                .map_err(cannot_open)?
        };
        let store = SqlStore {
            read,
            write,
            dialect,
            artifact_root: options.default_artifact_root,
            outbox_signal: Default::default(),
            log_queue: None,
            log_writer: Default::default(),
            seal_counts: Default::default(),
            planner_statistics: Default::default(),
        };
        store.migrate(policy, &redact_uri(&options.uri)).await?;
        store.ensure_default_experiment().await?;
        let mut store = store;
        if dialect == Dialect::Sqlite {
            let (sender, receiver) = tokio::sync::mpsc::channel(1024);
            let checkpointer = (!memory).then(|| CheckpointLink::start(store.read.clone()));
            // The writer task holds a store without the queue, so it ends once every handle
            // that can send is dropped; the checkpointer ends with it.
            tokio::spawn(store.clone().run_log_queue(receiver, checkpointer));
            store.log_queue = Some(sender);
        }
        // Histories an earlier process (or an older mlox) left unpacked are packed beside the
        // server's work; until then they are read from their rows, as correctly but slower.
        let sweeper = store.clone();
        tokio::spawn(async move {
            match sweeper.seal_metric_histories().await {
                Ok(0) => {}
                Ok(points) => tracing::info!(points, "metric histories packed into blocks"),
                Err(e) => tracing::warn!(error = %e, "could not pack metric histories"),
            }
        });
        Ok(store)
    }

    /// The rows `select` (a statement ending in `… IN `) finds for every owner: one query per
    /// [`IN_LIST_CHUNK`] owners, with `tail` (an `ORDER BY`, say) after the list. An owner's
    /// rows all come from one query, in `tail`'s order.
    pub(crate) async fn load_children<K: BindValue>(
        &self,
        select: &str,
        owners: &[K],
        tail: &str,
    ) -> Result<Vec<AnyRow>> {
        let mut rows = Vec::new();
        for chunk in owners.chunks(IN_LIST_CHUNK) {
            let mut sql = self.sql(select);
            sql.bind_list(chunk.iter().map(BindValue::to_bind));
            sql.push(tail);
            rows.extend(sql.query().fetch_all(&self.read).await.map_err(db_err)?);
        }
        Ok(rows)
    }

    /// Adds the `{key, value}` rows of a tag or param table for the given owners to `into`,
    /// in key order; the one read behind every entity's tags and params.
    pub(crate) async fn collect_key_values(
        &self,
        table: &str,
        owner_column: &str,
        owners: &[String],
        into: &mut std::collections::HashMap<String, Vec<mlox_core::entities::KeyValue>>,
    ) -> Result<()> {
        let select = format!(
            "SELECT {owner_column} AS owner, key, value FROM {table} WHERE {owner_column} IN "
        );
        for row in self.load_children(&select, owners, " ORDER BY key").await? {
            into.entry(get_str(&row, "owner")).or_default().push(
                mlox_core::entities::KeyValue::new(get_str(&row, "key"), get_str(&row, "value")),
            );
        }
        Ok(())
    }

    /// Notified when webhook events are queued by this process.
    pub fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_signal.clone()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn writer_pool(&self) -> &AnyPool {
        &self.write
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub(crate) async fn close_pools(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// The schema version the database is at (0 when it is empty).
    pub async fn schema_version(&self) -> Result<i64> {
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        self.schema_version_on(&mut conn).await
    }

    async fn schema_version_on(&self, conn: &mut sqlx::AnyConnection) -> Result<i64> {
        let exists = match self.dialect {
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'mlox_schema'"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_name = 'mlox_schema' AND table_schema = current_schema()"
            }
        };
        let n: i64 = sqlx::query(exists)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?
            .get::<i64, _>(0);
        if n == 0 {
            return Ok(0);
        }
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM mlox_schema")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(row.get::<i64, _>(0))
    }

    async fn migrate(&self, policy: SchemaPolicy, uri: &str) -> Result<()> {
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        // Replicas starting together on one empty PostgreSQL database would otherwise race to
        // create the same tables; the lock makes one of them do it while the others wait.
        // SQLite's single writer connection already serialises this process.
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_lock(8137450221)")
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        let result = self.migrate_on(&mut conn, policy, uri).await;
        if self.dialect == Dialect::Postgres {
            // Closing the connection would release the lock too; unlocking keeps it poolable.
            let _ = sqlx::query("SELECT pg_advisory_unlock(8137450221)")
                .execute(&mut *conn)
                .await;
        }
        result
    }

    async fn migrate_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        policy: SchemaPolicy,
        uri: &str,
    ) -> Result<()> {
        let current = self.schema_version_on(conn).await?;
        if current > SCHEMA_VERSION {
            return Err(Error::invalid_state(format!(
                "The database schema is at version {current}, newer than this mlox understands \
                 (up to {SCHEMA_VERSION}). A newer mlox has upgraded this database: run that \
                 version instead."
            )));
        }
        if current > 0 && current < SCHEMA_VERSION && policy == SchemaPolicy::CreateIfEmpty {
            return Err(Error::invalid_state(format!(
                "The database schema is at version {current}, older than this mlox \
                 (version {SCHEMA_VERSION}). Stop every server using it, back it up, then run \
                 `mlox db upgrade {uri}`."
            )));
        }
        if current == 0 {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS mlox_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        }
        for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
            let sqlite = self.dialect == Dialect::Sqlite;
            let sql = sql
                .replace(
                    "{{WITHOUT_ROWID}}",
                    if sqlite { "WITHOUT ROWID" } else { "" },
                )
                .replace("{{BLOB}}", if sqlite { "BLOB" } else { "BYTEA" });
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_err)?;
            for statement in split_statements(&sql) {
                sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        Error::internal(format!("migration {version} ({name}) failed: {e}"))
                    })?;
            }
            if *version == 3 {
                // Traces stored before this migration keep their searchable fields only inside
                // the info document; copy them out so every trace can be searched.
                crate::traces::backfill_search_fields(self, &mut tx).await?;
            }
            sqlx::query("INSERT INTO mlox_schema (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(*version)
                .bind(*name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            tracing::info!(version, name, "applied schema migration");
        }
        Ok(())
    }
}

/// Whether opening a store may change an existing schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SchemaPolicy {
    CreateIfEmpty,
    Upgrade,
}

/// The URI with any password replaced, for messages and logs.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => uri.to_string(),
        },
        None => uri.to_string(),
    }
}

/// Splits a migration file into statements; the files keep semicolons out of string literals.
pub(crate) fn split_statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Most owners named in one `IN (…)` list when reading or deleting the children of many rows:
/// far below either engine's limit on bound values, and a whole page of search results in
/// one query per table.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// A value that owners are keyed by (ids as text or numbers).
pub(crate) trait BindValue {
    fn to_bind(&self) -> Bind;
}

impl BindValue for String {
    fn to_bind(&self) -> Bind {
        Bind::Str(self.clone())
    }
}

impl BindValue for i64 {
    fn to_bind(&self) -> Bind {
        Bind::I64(*self)
    }
}

/// The page size a search asked for, `default` when it named none; a size outside `allowed`
/// is refused with `refusal(size)`, the message MLflow answers for that search.
pub(crate) fn page_size(
    requested: Option<i64>,
    default: i64,
    allowed: std::ops::RangeInclusive<i64>,
    refusal: impl FnOnce(i64) -> String,
) -> Result<i64> {
    let size = requested.unwrap_or(default);
    if allowed.contains(&size) {
        Ok(size)
    } else {
        Err(Error::invalid(refusal(size)))
    }
}

/// [`page_size`] from 1 to `max`, refused in the words of MLflow's trace and evaluation
/// dataset searches. MLflow reads a size of 0 as none given before judging it when
/// `zero_is_unset`, and then names it `None`.
pub(crate) fn positive_page_size(
    requested: Option<i64>,
    default: i64,
    max: i64,
    zero_is_unset: bool,
) -> Result<i64> {
    page_size(requested, default, 1..=max, |size| {
        if size < 1 {
            let shown = if size == 0 && zero_is_unset {
                "None".to_string()
            } else {
                size.to_string()
            };
            format!(
                "Invalid value {shown} for parameter 'max_results' supplied. It must be a \
                 positive integer"
            )
        } else {
            format!(
                "Invalid value {size} for parameter 'max_results' supplied. It must be at most \
                 {max}"
            )
        }
    })
}

/// [`page_size`] from 1 to `max`, refused in the words of MLflow's experiment and registry
/// searches.
pub(crate) fn search_page_size(requested: Option<i64>, default: i64, max: i64) -> Result<i64> {
    page_size(requested, default, 1..=max, |size| {
        format!(
            "Invalid value for request parameter max_results. It must be at most {max}, but got \
             value {size}"
        )
    })
}

/// The rows of one search page: `size` rows from `offset`, read with one extra row so the
/// store knows whether a next page exists without counting.
pub(crate) struct PageWindow {
    offset: u64,
    size: i64,
}

impl PageWindow {
    pub fn new(token: Option<&str>, size: i64) -> Result<Self> {
        Ok(PageWindow {
            offset: mlox_core::page_token::decode(token)?,
            size,
        })
    }

    pub fn push_limit(&self, sql: &mut Sql) {
        sql.push(" LIMIT ")
            .bind_i64(self.size + 1)
            .push(" OFFSET ")
            .bind_i64(self.offset as i64);
    }

    /// Cuts the extra row off and returns the token for the next page, if there is one.
    pub fn finish<T>(&self, mut items: Vec<T>) -> (Vec<T>, Option<String>) {
        if items.len() as i64 > self.size {
            items.truncate(self.size as usize);
            let next = mlox_core::page_token::encode(self.offset + self.size as u64);
            (items, Some(next))
        } else {
            (items, None)
        }
    }
}

/// A value bound into a dynamically built statement.
#[derive(Clone, Debug)]
pub(crate) enum Bind {
    Str(String),
    I64(i64),
    F64(f64),
    OptStr(Option<String>),
    OptI64(Option<i64>),
    Bytes(Vec<u8>),
}

/// A statement under construction whose placeholders are numbered as they are added, so the
/// same text runs on both dialects (SQLite reads `$n` as the n-th parameter too).
#[derive(Default, Debug)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    /// Emit anonymous `?` placeholders: SQLite resolves every named placeholder by scanning
    /// the statement's list of names, which makes binding a 1000-row insert quadratic.
    positional: bool,
}

impl Sql {
    /// A statement with `$n` placeholders, valid on both dialects.
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
            positional: false,
        }
    }
    /// A statement with the placeholders that bind fastest on `dialect`.
    pub fn for_dialect(dialect: Dialect, text: &str) -> Self {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
            positional: dialect == Dialect::Sqlite,
        }
    }
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        if self.positional {
            self.text.push('?');
        } else {
            self.text.push_str(&format!("${}", self.binds.len()));
        }
        self
    }
    pub fn bind_str(&mut self, value: impl Into<String>) -> &mut Self {
        self.bind(Bind::Str(value.into()))
    }
    pub fn bind_i64(&mut self, value: i64) -> &mut Self {
        self.bind(Bind::I64(value))
    }
    pub fn bind_f64(&mut self, value: f64) -> &mut Self {
        self.bind(Bind::F64(value))
    }
    /// Appends `(p1, p2, …)` for an IN list.
    pub fn bind_list<I: IntoIterator<Item = Bind>>(&mut self, values: I) -> &mut Self {
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self.text.push(')');
        self
    }
    /// Appends `(…), (…), …` for a multi-row insert: one row of placeholders per item.
    pub fn bind_rows<T, R: IntoIterator<Item = Bind>>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        row: impl Fn(T) -> R,
    ) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind_list(row(item));
        }
        self
    }
    /// Every fragment of `text` is a literal of this crate; user input only ever travels in
    /// `binds`, which is what makes asserting the text SQL-safe correct.
    pub fn query(self) -> sqlx::query::Query<'static, sqlx::Any, AnyArguments> {
        let mut args = AnyArguments::default();
        for b in self.binds {
            // Adding to AnyArguments only fails for types Any cannot carry; ours all can.
            let _ = match b {
                Bind::Str(s) => args.add(s),
                Bind::I64(v) => args.add(v),
                Bind::F64(v) => args.add(v),
                Bind::OptStr(v) => args.add(v),
                Bind::OptI64(v) => args.add(v),
                Bind::Bytes(v) => args.add(v),
            };
        }
        sqlx::query_with(sqlx::AssertSqlSafe(self.text), args)
    }
}

/// Statements that run one after another inside one transaction. On SQLite, small statements
/// reach the database thread together as one multi-statement text: one round trip instead of
/// one per statement (with `?` placeholders each statement takes its values in order).
/// PostgreSQL's extended protocol carries one statement at a time.
#[derive(Default, Debug)]
pub(crate) struct Script {
    statements: Vec<Sql>,
}

/// Bound values a combined SQLite text may carry. The connection caches every text it runs,
/// prepared, and texts combined from many statements vary with what was combined; a cap keeps
/// each cached text small. A statement over it (a 1000-point insert) runs alone, its text
/// shared by every call that size.
const SCRIPT_BINDS_AT_MOST: usize = 2000;

impl Script {
    pub fn push(&mut self, sql: Sql) {
        self.statements.push(sql);
    }

    /// The statements as they travel: on SQLite, neighbours joined while their values stay
    /// within [`SCRIPT_BINDS_AT_MOST`].
    fn into_trips(self, dialect: Dialect) -> Vec<Sql> {
        if dialect != Dialect::Sqlite {
            return self.statements;
        }
        let mut trips: Vec<Sql> = Vec::new();
        for sql in self.statements {
            match trips.last_mut() {
                Some(last)
                    if last.positional
                        && sql.positional
                        && last.binds.len() + sql.binds.len() <= SCRIPT_BINDS_AT_MOST =>
                {
                    last.text.push_str(";\n");
                    last.text.push_str(&sql.text);
                    last.binds.extend(sql.binds);
                }
                _ => trips.push(sql),
            }
        }
        trips
    }

    pub async fn execute(
        self,
        dialect: Dialect,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<()> {
        for sql in self.into_trips(dialect) {
            sql.query().execute(&mut **tx).await.map_err(db_err)?;
        }
        Ok(())
    }
}

/// Runs a statement that must change at least one row; `missing` is the error when none matched.
pub(crate) async fn execute_one<'c, E>(
    sql: Sql,
    executor: E,
    missing: impl FnOnce() -> Error,
) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let done = sql.query().execute(executor).await.map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(missing());
    }
    Ok(())
}

pub(crate) fn get_str(row: &AnyRow, col: &str) -> String {
    row.try_get::<String, _>(col).unwrap_or_default()
}

pub(crate) fn get_opt_str(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
}

pub(crate) fn get_i64(row: &AnyRow, col: &str) -> i64 {
    row.try_get::<i64, _>(col).unwrap_or_default()
}

pub(crate) fn get_opt_i64(row: &AnyRow, col: &str) -> Option<i64> {
    row.try_get::<Option<i64>, _>(col).ok().flatten()
}

pub(crate) fn get_f64(row: &AnyRow, col: &str) -> f64 {
    row.try_get::<f64, _>(col)
        .or_else(|_| row.try_get::<i64, _>(col).map(|v| v as f64))
        .unwrap_or(f64::NAN)
}

/// Joins a child onto an artifact root the way MLflow does for both URIs and plain paths.
pub fn append_to_uri_path(root: &str, child: &str) -> String {
    let root = root.trim_end_matches('/');
    if root.ends_with(':') {
        format!("{root}/{child}")
    } else if root.is_empty() {
        child.to_string()
    } else {
        format!("{root}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_sqlite_uris_map_to_sqlx_urls() {
        assert_eq!(
            to_sqlx_url("sqlite:///mlruns.db").unwrap().1,
            "sqlite://mlruns.db?mode=rwc"
        );
        assert_eq!(
            to_sqlx_url("sqlite:////tmp/a b.db").unwrap().1,
            "sqlite:///tmp/a%20b.db?mode=rwc"
        );
        assert_eq!(
            to_sqlx_url("postgresql://u@h:5432/d").unwrap(),
            (Dialect::Postgres, "postgres://u@h:5432/d".into())
        );
        assert!(to_sqlx_url("mysql://x").is_err());
    }

    #[test]
    fn artifact_roots_join_like_mlflow() {
        assert_eq!(
            append_to_uri_path("mlflow-artifacts:", "1"),
            "mlflow-artifacts:/1"
        );
        assert_eq!(
            append_to_uri_path("mlflow-artifacts:/", "1"),
            "mlflow-artifacts:/1"
        );
        assert_eq!(append_to_uri_path("s3://b/p/", "1"), "s3://b/p/1");
        assert_eq!(append_to_uri_path("/data/art", "1"), "/data/art/1");
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_uri("postgresql://mlflow:s3cr3t@db:5432/mlflow"),
            "postgresql://mlflow:***@db:5432/mlflow"
        );
        assert_eq!(
            redact_uri("postgresql://mlflow@db/mlflow"),
            "postgresql://mlflow@db/mlflow"
        );
        assert_eq!(redact_uri("sqlite:///mlruns.db"), "sqlite:///mlruns.db");
        assert_eq!(redact_uri("plain"), "plain");
    }

    #[test]
    fn scripts_join_small_sqlite_statements_and_send_big_ones_alone() {
        let statement = |binds: usize| {
            let mut sql = Sql::for_dialect(Dialect::Sqlite, "INSERT INTO t VALUES ");
            sql.bind_list((0..binds as i64).map(Bind::I64));
            sql
        };
        let script = |sizes: &[usize]| {
            let mut script = Script::default();
            for &n in sizes {
                script.push(statement(n));
            }
            script
        };
        let shape = |trips: Vec<Sql>| -> Vec<(usize, usize)> {
            trips
                .iter()
                .map(|t| (t.text.matches("INSERT").count(), t.binds.len()))
                .collect()
        };
        assert_eq!(
            shape(script(&[10, 20, 30]).into_trips(Dialect::Sqlite)),
            vec![(3, 60)]
        );
        assert_eq!(
            shape(script(&[10, 9000, 1500, 600]).into_trips(Dialect::Sqlite)),
            vec![(1, 10), (1, 9000), (1, 1500), (1, 600)]
        );
        assert_eq!(
            shape(script(&[900, 1100, 5]).into_trips(Dialect::Sqlite)),
            vec![(2, 2000), (1, 5)]
        );
        // Each joined statement keeps its own placeholders, in order.
        let joined = &script(&[1, 2]).into_trips(Dialect::Sqlite)[0].text;
        assert_eq!(
            joined,
            "INSERT INTO t VALUES (?);\nINSERT INTO t VALUES (?, ?)"
        );
        // PostgreSQL takes one statement per trip, and `$n` statements are never joined.
        assert_eq!(script(&[1, 2]).into_trips(Dialect::Postgres).len(), 2);
        let mut numbered = Script::default();
        numbered.push(Sql::new("SELECT 1"));
        numbered.push(Sql::new("SELECT 2"));
        assert_eq!(numbered.into_trips(Dialect::Sqlite).len(), 2);
    }

    #[test]
    fn statements_split_on_semicolons_outside_comments() {
        let s = split_statements(
            "-- a; comment\nCREATE TABLE a (x INT);\n\nCREATE INDEX i ON a (x);\n",
        );
        assert_eq!(s, vec!["CREATE TABLE a (x INT)", "CREATE INDEX i ON a (x)"]);
    }
}
