//! Taking over an existing MLflow installation: `mlox import` reads an MLflow tracking and
//! model-registry database (SQLite or PostgreSQL, MLflow's own SQLAlchemy schema) and writes
//! its experiments, runs, metrics, datasets, logged models, registry, traces and evaluation
//! datasets into an mlox store.
//! This crate owns the reading side, i.e. knowledge of MLflow's schema and its revisions; the
//! writing goes through `mlox_store`'s id-preserving import API, so mlox's own schema stays in
//! one place.
//!
//! # What is kept
//! Every id: experiment ids, run uuids, dataset and input uuids, logged model ids (`m-…`),
//! registered model names and version numbers (deleted versions included, so numbers are never
//! reused), aliases. Artifact locations, run artifact URIs, version sources and storage
//! locations are copied verbatim, so `runs:/<id>/…`, `models:/<name>/<n>`,
//! `models:/<name>@<alias>` and `models:/m-…` URIs resolve as before, provided the mlox server
//! serves the same artifact store: for `mlflow-artifacts:` locations start it with the same
//! `--artifacts-destination` the MLflow server had. Lifecycle stages (deleted experiments and
//! runs), model version stages and statuses are kept as they are. New experiments and versions
//! created in mlox afterwards are numbered above the imported ones, since mlox numbers both
//! from the highest existing id.
//!
//! # Guarantees
//! Each batch of rows (`--batch-size`) is written in one transaction, so an interrupted import
//! leaves whole batches; running it again completes it. Re-running is idempotent: rows whose
//! key already exists in the target are skipped, never duplicated or overwritten (metric
//! points are keyed on all their fields, as in MLflow), with two deliberate exceptions: the
//! latest value of a metric moves only forward (the rule of every metric write), and
//! experiment 0 ("Default", which every store creates for itself) takes the source's name and
//! artifact location. The import is meant for a fresh target or one filled by earlier imports
//! of the same source; an experiment name that exists under another id stops it with an error.
//! The source is only read (SQLite sources are opened read-only); stop the MLflow server first
//! so that the copy is consistent.
//!
//! Webhooks keep their ids, events and status. MLflow stores their signing secrets encrypted
//! with the Fernet key in `MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`; given that key, each secret is
//! opened and sealed again with mlox's (`MLFLOW_CRYPTO_KEK_PASSPHRASE`), so receivers keep
//! verifying signatures unchanged. A webhook whose secret cannot be opened is left out and
//! counted, never written without its secret.
//!
//! Traces, their spans, assessments and run links go through the store's trace operations
//! (`traces`), since mlox keeps search columns beside each trace; evaluation datasets and
//! prompts (registered models to MLflow) are ordinary tables here. Not imported (their row
//! counts are reported): registered scorers, the AI gateway's configuration and budgets,
//! issues, and MLflow features mlox does not have (jobs, …). A source using MLflow workspaces
//! other than `default` is refused.

mod fernet;
mod plan;
mod revisions;
mod source;
mod traces;

use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use mlox_store::{ImportKind, ImportTable, ImportValue, SqlStore, StoreOptions};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub use revisions::MLFLOW_HEAD_REVISION;

/// Rows per transaction unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 5_000;

#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The MLflow database: `sqlite:///path/mlflow.db`, `postgresql://user@host:port/db`
    /// (a `+driver` suffix such as `postgresql+psycopg2` is accepted).
    pub from: String,
    /// The mlox backend store, in `mlox server --backend-store-uri` form.
    pub to: String,
    /// Rows written per transaction.
    pub batch_size: usize,
    /// Show a progress bar and a summary line per table on stderr (the bar only on a terminal).
    pub progress: bool,
    /// The Fernet key the MLflow server encrypted webhook secrets with
    /// (`MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`).
    pub webhook_secret_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "unsupported MLflow database URL '{0}': use sqlite:///<path> or \
         postgresql://<user>@<host>:<port>/<database>"
    )]
    UnsupportedUrl(String),
    #[error("cannot open the MLflow database '{url}': {message}")]
    SourceUnavailable { url: String, message: String },
    #[error(
        "'{0}' is not an MLflow database: it has no alembic_version table (MLflow creates one \
         in every tracking database)"
    )]
    NotMlflow(String),
    #[error("the MLflow database lacks tables every MLflow tracking database has: {0}")]
    MissingTables(String),
    #[error(
        "the MLflow database uses workspaces other than 'default' ({0}); mlox has a single \
         namespace, so names could collide. Not imported."
    )]
    Workspaces(String),
    #[error("the source and the target are the same database")]
    SameDatabase,
    #[error("reading {table} from the MLflow database: {source}")]
    Read {
        table: &'static str,
        source: sqlx::Error,
    },
    #[error("mlox store: {0}")]
    Target(String),
    #[error("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY: {0}")]
    WebhookKey(fernet::FernetError),
}

impl From<mlox_core::Error> for ImportError {
    fn from(e: mlox_core::Error) -> Self {
        if e.code == mlox_core::Code::ResourceAlreadyExists {
            // Keys already present are skipped, so this is a unique name held by another id.
            return ImportError::Target(format!(
                "{}: a name in the MLflow database is already taken in the target by a \
                 different id; import into a fresh store",
                e.message
            ));
        }
        ImportError::Target(e.message)
    }
}

/// What happened to one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableReport {
    /// The mlox table written (`run_models` is read from MLflow's `inputs`).
    pub table: &'static str,
    pub read: u64,
    /// Rows new in the target (or, for latest metrics and experiment 0, changed).
    pub written: u64,
    /// The source has no such table (an older MLflow); nothing was read.
    pub absent: bool,
    pub elapsed: Duration,
}

impl std::fmt::Display for TableReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.absent {
            return write!(f, "{:<30} not in the source database", self.table);
        }
        write!(
            f,
            "{:<30} {:>10} read {:>10} written {:>10} already present  ({:.1} s)",
            self.table,
            self.read,
            self.written,
            self.read.saturating_sub(self.written),
            self.elapsed.as_secs_f64()
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// The source's alembic revision.
    pub source_revision: String,
    pub tables: Vec<TableReport>,
    /// MLflow data left behind: (what, rows, why).
    pub not_imported: Vec<(&'static str, u64, &'static str)>,
}

impl ImportReport {
    pub fn table(&self, name: &str) -> Option<&TableReport> {
        self.tables.iter().find(|t| t.table == name)
    }
}

/// Copies an MLflow database into an mlox store. The target's schema is created or upgraded
/// first; a target newer than this mlox is refused.
pub async fn import(options: &ImportOptions) -> Result<ImportReport, ImportError> {
    if options.from.trim() == options.to.trim() {
        return Err(ImportError::SameDatabase);
    }
    let source = source::Source::open(&options.from).await?;
    let target = SqlStore::open(StoreOptions {
        uri: options.to.clone(),
        // Only names the target's own Default experiment, which the import replaces.
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 2,
    })
    .await?;
    let mut report = ImportReport {
        source_revision: source.revision.clone(),
        ..Default::default()
    };
    tracing::info!(from = %options.from, to = %options.to, revision = %source.revision, "importing an MLflow database");
    let batch_size = options.batch_size.max(1);
    let mut webhook_secrets = WebhookSecrets::new(options.webhook_secret_key.as_deref())?;
    for plan in plan::plans(&source) {
        let started = Instant::now();
        if !source.has_table(plan.source_table) {
            let table = TableReport {
                table: plan.label,
                read: 0,
                written: 0,
                absent: true,
                elapsed: Duration::ZERO,
            };
            if options.progress {
                eprintln!("{table}");
            }
            report.tables.push(table);
            continue;
        }
        let total = source.count(&plan.count).await?;
        let bar = progress_bar(options.progress, plan.label, total);
        let columns = plan.target.columns();
        let read_err = |source| ImportError::Read {
            table: plan.source_table,
            source,
        };
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(plan.select.clone())).fetch(&source.pool);
        let mut batch = Vec::with_capacity(batch_size.min(total as usize + 1));
        let (mut read, mut written) = (0u64, 0u64);
        while let Some(row) = rows.try_next().await.map_err(read_err)? {
            let mut values = convert(&row, &columns).map_err(read_err)?;
            // A webhook left out is reported under "not imported", not as a row read.
            if plan.target == ImportTable::Webhooks && !webhook_secrets.reseal(&mut values) {
                continue;
            }
            batch.push(values);
            if batch.len() >= batch_size {
                let n = batch.len() as u64;
                written += target
                    .import_rows(plan.target, std::mem::take(&mut batch))
                    .await?;
                read += n;
                bar.inc(n);
            }
        }
        read += batch.len() as u64;
        written += target.import_rows(plan.target, batch).await?;
        bar.finish_and_clear();
        let table = TableReport {
            table: plan.label,
            read,
            written,
            absent: false,
            elapsed: started.elapsed(),
        };
        if options.progress {
            eprintln!("{table}");
        }
        report.tables.push(table);
    }
    report
        .tables
        .extend(traces::import_traces(&source, &target, options.progress).await?);
    // Histories are written point by point like any table; packing long ones into blocks now
    // means the first read of each is already fast.
    let sealed = target.seal_metric_histories().await?;
    tracing::info!(points = sealed, "metric histories packed into blocks");
    if webhook_secrets.left_out > 0 {
        let why = if webhook_secrets.key.is_some() {
            "webhooks whose secret does not open with MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY \
             were left out: set it to the key the MLflow server used"
        } else {
            "webhooks with a secret were left out: set MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY to \
             the key the MLflow server used, and import again"
        };
        tracing::warn!(rows = webhook_secrets.left_out, "{why}");
        report
            .not_imported
            .push(("webhooks", webhook_secrets.left_out, why));
    }
    for (table, filter, why) in plan::NOT_IMPORTED {
        if !source.has_table(table) {
            continue;
        }
        let filter = if filter.is_empty() || source.has_column(table, "deleted_timestamp") {
            filter
        } else {
            ""
        };
        let n = source
            .count(&format!("SELECT COUNT(*) FROM {table}{filter}"))
            .await?;
        if n > 0 {
            tracing::warn!(rows = n, "{why}");
            report.not_imported.push((table, n, why));
        }
    }
    Ok(report)
}

fn progress_bar(enabled: bool, label: &str, total: u64) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{prefix:<24} [{wide_bar}] {human_pos}/{human_len} rows  eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::new(total)
        .with_style(style)
        .with_prefix(label.to_string())
}

/// One source row as the target's typed values; the SELECT already produced them in order.
fn convert(row: &AnyRow, columns: &[(&str, ImportKind)]) -> Result<Vec<ImportValue>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                ImportKind::Text => {
                    ImportValue::Text(row.try_get::<Option<String>, _>(i)?.unwrap_or_default())
                }
                ImportKind::OptText => ImportValue::OptText(row.try_get(i)?),
                ImportKind::Int => {
                    ImportValue::Int(row.try_get::<Option<i64>, _>(i)?.unwrap_or_default())
                }
                ImportKind::OptInt => ImportValue::OptInt(row.try_get(i)?),
                ImportKind::Real => {
                    ImportValue::Real(row.try_get::<Option<f64>, _>(i)?.unwrap_or_default())
                }
            })
        })
        .collect()
}

/// Opens MLflow's webhook secrets and seals them with mlox's key, counting those it cannot.
struct WebhookSecrets {
    key: Option<fernet::FernetKey>,
    left_out: u64,
}

/// Where the secret sits in a webhooks row (see `ImportTable::Webhooks`).
const WEBHOOK_SECRET_COLUMN: usize = 5;

impl WebhookSecrets {
    fn new(key: Option<&str>) -> Result<Self, ImportError> {
        let key = key
            .filter(|k| !k.trim().is_empty())
            .map(fernet::FernetKey::parse)
            .transpose()
            .map_err(ImportError::WebhookKey)?;
        Ok(WebhookSecrets { key, left_out: 0 })
    }

    /// Replaces the row's Fernet token with an mlox-sealed secret; false leaves the row out.
    fn reseal(&mut self, row: &mut [ImportValue]) -> bool {
        let Some(ImportValue::OptText(secret)) = row.get_mut(WEBHOOK_SECRET_COLUMN) else {
            return false;
        };
        let Some(token) = secret.as_deref().filter(|t| !t.is_empty()) else {
            *secret = None;
            return true;
        };
        let opened = self
            .key
            .as_ref()
            .and_then(|key| key.open(token).ok())
            .and_then(|plain| String::from_utf8(plain).ok());
        let sealed = opened.and_then(|plain| mlox_webhooks::secrets().seal(&plain).ok());
        match sealed {
            Some(sealed) => {
                *secret = Some(sealed);
                true
            }
            None => {
                self.left_out += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(secret: Option<&str>) -> Vec<ImportValue> {
        let mut values = vec![ImportValue::Text(String::new()); WEBHOOK_SECRET_COLUMN];
        values.push(ImportValue::OptText(secret.map(str::to_string)));
        values
    }

    #[test]
    fn webhooks_without_a_secret_pass_and_secrets_without_the_key_are_left_out() {
        let mut secrets = WebhookSecrets::new(None).unwrap();
        let mut plain = row(Some(""));
        assert!(secrets.reseal(&mut plain));
        assert_eq!(plain[WEBHOOK_SECRET_COLUMN], ImportValue::OptText(None));
        assert!(!secrets.reseal(&mut row(Some("gAAAAAB-token"))));
        assert_eq!(secrets.left_out, 1);
    }

    #[test]
    fn a_key_that_is_not_a_fernet_key_stops_the_import_before_it_starts() {
        assert!(matches!(
            WebhookSecrets::new(Some("not-a-key")),
            Err(ImportError::WebhookKey(fernet::FernetError::BadKey))
        ));
        assert!(WebhookSecrets::new(Some("  ")).unwrap().key.is_none());
    }
}
