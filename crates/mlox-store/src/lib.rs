//! Persistence for mlox: one SQL store that serves both SQLite (the zero-set-up default) and
//! PostgreSQL (scale-out) from a single set of portable migrations and queries, reached through
//! sqlx's `Any` driver. It owns the schema, the translation of the search-filter AST into SQL,
//! and every consistency rule that needs a transaction (param immutability, latest-metric
//! upkeep, gap-free version numbers). Callers see only `mlox-core` types and errors. The
//! rules themselves (registry names, aliases and sources, webhook events, locations) live in
//! `mlox-core`; this crate holds SQL and transactions only, and must not import any other mlox
//! crate than mlox-core, nor any transport or artifact storage.
//!
//! One implementation instead of a trait with a copy per database: the SQL is written once in
//! the dialect both engines accept, and the few real differences live in [`Dialect`].

pub mod auth;
pub mod budgets;
mod db;
mod evaluation_datasets;
mod experiments;
pub mod gateway;
mod gc;
mod import;
pub mod issues;
mod logged_models;
mod logging;
mod maintenance;
mod metric_history;
mod registry;
mod runs;
pub mod scorers;
mod search;
mod spans;
pub mod trace_metrics;
pub mod traces;
mod webhooks;

pub use db::{Dialect, SCHEMA_VERSION, SqlStore, StoreOptions, now_ms, redact_uri};
pub use gc::{GcItem, GcPlan, GcRequest};
pub use import::{ImportKind, ImportTable, ImportValue};
pub use logged_models::{LoggedModelDataset, LoggedModelOrder};
pub use logging::{GROUP_SIZE_BOUNDS, LogWriterStats};
pub use maintenance::{Backup, ForeignSchema, backup, foreign_schema};
pub use metric_history::{HistoryPage, MetricPoint};
pub use registry::NewModelVersion;
pub use runs::{CreateRun, MAX_RESULTS_PER_RUN, MetricHistoryRequest};
pub use webhooks::{ClaimedDelivery, DeliveryOutcome, DeliveryRecord};
