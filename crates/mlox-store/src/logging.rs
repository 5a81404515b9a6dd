//! The write path of log calls (log-metric, log-parameter, set-tag, log-batch): the checks
//! MLflow makes before anything is written, and the statements that write a set of calls in one
//! transaction.
//!
//! On SQLite every call queues for one writer task, which takes whatever has queued as one
//! group and writes it with a fixed number of round trips to the database thread (begin, one
//! read of what the checks need, one script of writes, commit), however many calls the group
//! holds. A refused call is answered on its own and the group goes on; a database failure rolls
//! the group back and replays each call alone, so no call's outcome depends on its neighbours.
//! PostgreSQL has no single writer to queue for: each call is a group of one.

use crate::Dialect;
use crate::db::{Bind, Script, Sql, SqlStore, db_err, get_str};
use crate::runs::{ROWS_PER_INSERT, RUN_NAME_TAG, push_tag_upserts};
use mlox_core::entities::{KeyValue, LifecycleStage, Metric};
use mlox_core::ids::validate_run_id;
use mlox_core::{Error, Result, validation};
use sqlx::Connection as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Metric points per INSERT: a whole 1000-metric log-batch in one statement (9 values a row,
/// well within SQLite's 32,766 and PostgreSQL's 65,535 bound values).
const METRIC_ROWS_PER_INSERT: usize = 1000;
/// Calls the SQLite writer takes into one transaction at most.
const MAX_GROUP: usize = 64;
/// How long the SQLite writer keeps the write connection while calls keep coming.
const HOLD_WRITER_AT_MOST: Duration = Duration::from_millis(10);

/// Which endpoint a call came from: only error messages differ, as MLflow's name the offending
/// field of a batch but not of a single-value call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogShape {
    Single,
    Batch,
}

/// The validated content of one log call.
#[derive(Debug)]
pub(crate) struct LogCall {
    run_id: String,
    metrics: Vec<Metric>,
    params: Vec<KeyValue>,
    tags: Vec<KeyValue>,
    shape: LogShape,
}

impl LogCall {
    /// The (run, key) of each metric point the call logs.
    fn series(&self) -> impl Iterator<Item = (&str, &str)> {
        self.metrics
            .iter()
            .map(|m| (self.run_id.as_str(), m.key.as_str()))
    }
}

/// About how many pages a group's commit writes to the WAL: metric points are clustered by
/// (run, key), so every key a call logs dirties a leaf of its own, and each call's run dirties
/// its rows of `latest_metrics`, params and tags; only long batches fill more than a page
/// per key.
fn pages_dirtied<'c>(calls: impl Iterator<Item = &'c LogCall>) -> usize {
    const ROWS_PER_PAGE: usize = 50;
    let mut keys = std::collections::HashSet::new();
    let mut pages = 0;
    for call in calls {
        keys.extend(
            call.metrics
                .iter()
                .map(|m| (call.run_id.as_str(), m.key.as_str())),
        );
        pages += 1 + (call.metrics.len() + call.params.len() + call.tags.len()) / ROWS_PER_PAGE;
    }
    pages + keys.len()
}

/// Upper bounds of the group-size buckets [`LogWriterStats::group_sizes`] counts in; the last
/// is [`MAX_GROUP`], so every group falls in one.
pub const GROUP_SIZE_BOUNDS: [u64; 7] = [1, 2, 4, 8, 16, 32, MAX_GROUP as u64];

/// Counters the SQLite writer keeps as it goes; read with [`SqlStore::log_writer_stats`].
#[derive(Debug, Default)]
pub(crate) struct LogWriterCounters {
    queued: AtomicU64,
    calls: AtomicU64,
    group_sizes: [AtomicU64; GROUP_SIZE_BOUNDS.len()],
}

impl LogWriterCounters {
    fn taken(&self, group: usize) {
        self.queued.fetch_sub(group as u64, Ordering::Relaxed);
        self.calls.fetch_add(group as u64, Ordering::Relaxed);
        let bucket = GROUP_SIZE_BOUNDS
            .iter()
            .position(|&bound| group as u64 <= bound)
            .unwrap_or(GROUP_SIZE_BOUNDS.len() - 1);
        self.group_sizes[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// What the SQLite writer has done since the store opened. PostgreSQL stores have no writer
/// queue; theirs stay zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogWriterStats {
    /// Calls waiting for the writer now.
    pub queued: u64,
    /// Calls the writer has taken.
    pub calls: u64,
    /// How many groups had a size up to each of [`GROUP_SIZE_BOUNDS`] (and above the bound
    /// before it).
    pub group_sizes: [u64; GROUP_SIZE_BOUNDS.len()],
}

impl LogWriterStats {
    /// Groups (transactions) the writer has committed or tried to.
    pub fn groups(&self) -> u64 {
        self.group_sizes.iter().sum()
    }
}

/// One log call waiting for the SQLite writer.
#[derive(Debug)]
pub(crate) struct LogJob {
    call: LogCall,
    reply: tokio::sync::oneshot::Sender<Result<()>>,
}

/// The answer to a call written alone.
fn log_outcome(written: Result<Vec<Result<()>>>) -> Result<()> {
    written?.pop().unwrap_or(Ok(()))
}

impl SqlStore {
    /// The one write path behind log-metric, log-parameter, set-tag and log-batch.
    pub(crate) async fn log_entities(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[KeyValue],
        tags: &[KeyValue],
        shape: LogShape,
    ) -> Result<()> {
        validate_run_id(run_id)?;
        let path = |field: &str, i: usize| match shape {
            LogShape::Batch => format!("{field}[{i}]"),
            LogShape::Single => String::new(),
        };
        for (i, m) in metrics.iter().enumerate() {
            validation::validate_metric(m, &path("metrics", i))?;
        }
        let params: Vec<KeyValue> = params
            .iter()
            .enumerate()
            .map(|(i, p)| validation::validate_param(p, &path("params", i)))
            .collect::<Result<_>>()?;
        let tags: Vec<KeyValue> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| validation::validate_run_tag(t, &path("tags", i)))
            .collect::<Result<_>>()?;
        let call = LogCall {
            run_id: run_id.to_string(),
            metrics: metrics.to_vec(),
            params,
            tags,
            shape,
        };
        let Some(queue) = &self.log_queue else {
            return self.log_alone(&call).await;
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.log_writer.queued.fetch_add(1, Ordering::Relaxed);
        if queue.send(LogJob { call, reply }).await.is_err() {
            self.log_writer.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::internal("the write queue stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("the write queue stopped")))
    }

    /// What the SQLite writer has done so far.
    pub fn log_writer_stats(&self) -> LogWriterStats {
        let counters = &self.log_writer;
        LogWriterStats {
            queued: counters.queued.load(Ordering::Relaxed),
            calls: counters.calls.load(Ordering::Relaxed),
            group_sizes: std::array::from_fn(|i| counters.group_sizes[i].load(Ordering::Relaxed)),
        }
    }

    /// One log call in its own transaction.
    async fn log_alone(&self, call: &LogCall) -> Result<()> {
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        log_outcome(self.log_on(&mut conn, &[call]).await)
    }

    /// The SQLite writer: takes whatever has queued (up to [`MAX_GROUP`] calls) into one
    /// transaction. While calls keep coming it keeps the write connection between groups (for
    /// at most [`HOLD_WRITER_AT_MOST`], so other writes get their turn), sparing each group a
    /// trip through the pool. After each group the WAL checkpointer hears how many rows were
    /// written, so under heavy logging checkpoints happen beside the writer instead of inside
    /// its commits.
    pub(crate) async fn run_log_queue(
        self,
        mut queue: tokio::sync::mpsc::Receiver<LogJob>,
        mut checkpointer: Option<crate::db::CheckpointLink>,
    ) {
        let mut held: Option<(sqlx::pool::PoolConnection<sqlx::Any>, Instant)> = None;
        loop {
            let first = match queue.try_recv() {
                Ok(job) => job,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    held = None;
                    match queue.recv().await {
                        Some(job) => job,
                        None => break,
                    }
                }
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.log_writer.taken(group.len());
            if held
                .as_ref()
                .is_some_and(|(_, since)| since.elapsed() >= HOLD_WRITER_AT_MOST)
            {
                held = None;
            }
            let conn = match &mut held {
                Some((conn, _)) => conn,
                None => match self.write.acquire().await {
                    Ok(conn) => &mut held.insert((conn, Instant::now())).0,
                    Err(e) => {
                        let e = db_err(e);
                        for job in group {
                            let _ = job.reply.send(Err(e.clone()));
                        }
                        continue;
                    }
                },
            };
            let pages = pages_dirtied(group.iter().map(|j| &j.call));
            let due = self
                .seal_counts
                .add(group.iter().flat_map(|j| j.call.series()));
            let calls: Vec<&LogCall> = group.iter().map(|j| &j.call).collect();
            match self.log_on(conn, &calls).await {
                Ok(results) => {
                    for (job, result) in group.into_iter().zip(results) {
                        let _ = job.reply.send(result);
                    }
                }
                Err(_) => {
                    for job in group {
                        let result = log_outcome(self.log_on(conn, &[&job.call]).await);
                        let _ = job.reply.send(result);
                    }
                }
            }
            // Beside the writer: sealing a block never delays the calls that filled it.
            self.seal_in_background(due);
            if let Some(link) = &mut checkpointer {
                link.committed(pages);
            }
        }
    }

    /// Calls in one transaction on `conn`; `Err` means nothing was committed.
    async fn log_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        calls: &[&LogCall],
    ) -> Result<Vec<Result<()>>> {
        let mut tx = conn.begin().await.map_err(db_err)?;
        let results = self.write_log_calls(&mut tx, calls).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(results)
    }

    /// Checks each call in order and writes the accepted ones inside the caller's transaction,
    /// answering each call's outcome. A call is checked against the database as it was before
    /// the group plus the calls accepted before it, exactly as if the calls ran one by one; an
    /// outer `Err` is a database failure after which the transaction must not be committed.
    async fn write_log_calls(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        calls: &[&LogCall],
    ) -> Result<Vec<Result<()>>> {
        let stages = self.lock_run_stages(tx, calls).await?;
        let mut params = self.existing_params(tx, calls).await?;
        let mut script = Script::default();
        let mut points: Vec<(&str, &Metric)> = Vec::new();
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            let run_id = call.run_id.as_str();
            let checked = check_run_accepts_writes(run_id, stages.get(run_id))
                .and_then(|()| fresh_params(call, &params));
            let fresh = match checked {
                Ok(fresh) => fresh,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            push_param_inserts(&mut script, self.dialect, run_id, &fresh);
            for p in fresh {
                params.insert((run_id.to_string(), p.key.clone()), p.value.clone());
            }
            if !call.tags.is_empty() {
                push_tag_upserts(&mut script, self.dialect, run_id, &call.tags);
                if let Some(name) = call.tags.iter().rev().find(|t| t.key == RUN_NAME_TAG) {
                    let mut sql = self.sql("UPDATE runs SET name = ");
                    sql.bind_str(&name.value)
                        .push(" WHERE run_uuid = ")
                        .bind_str(run_id);
                    script.push(sql);
                }
            }
            points.extend(call.metrics.iter().map(|m| (run_id, m)));
            results.push(Ok(()));
        }
        if !points.is_empty() {
            push_metric_writes(&mut script, self.dialect, &mut points);
        }
        script.execute(self.dialect, tx).await?;
        Ok(results)
    }

    /// The lifecycle stage of each run the calls name, read inside the write transaction (and
    /// locked on PostgreSQL) so no delete can slip between the check and the writes.
    async fn lock_run_stages(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        calls: &[&LogCall],
    ) -> Result<HashMap<String, String>> {
        let mut runs: Vec<&str> = calls.iter().map(|c| c.run_id.as_str()).collect();
        runs.sort_unstable();
        runs.dedup();
        let mut stages = HashMap::with_capacity(runs.len());
        for chunk in runs.chunks(ROWS_PER_INSERT) {
            let mut sql = self.sql("SELECT run_uuid, lifecycle_stage FROM runs WHERE run_uuid IN ");
            sql.bind_list(chunk.iter().map(|r| Bind::Str(r.to_string())));
            if self.dialect == Dialect::Postgres {
                sql.push(" ORDER BY run_uuid FOR UPDATE");
            }
            for row in sql.query().fetch_all(&mut **tx).await.map_err(db_err)? {
                stages.insert(get_str(&row, "run_uuid"), get_str(&row, "lifecycle_stage"));
            }
        }
        Ok(stages)
    }

    /// The stored values of the params the calls log, keyed by (run, key).
    async fn existing_params(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        calls: &[&LogCall],
    ) -> Result<HashMap<(String, String), String>> {
        let mut existing = HashMap::new();
        for call in calls.iter().filter(|c| !c.params.is_empty()) {
            for chunk in call.params.chunks(ROWS_PER_INSERT) {
                let mut sql = self.sql("SELECT key, value FROM params WHERE run_uuid = ");
                sql.bind_str(&call.run_id).push(" AND key IN ");
                sql.bind_list(chunk.iter().map(|p| Bind::Str(p.key.clone())));
                for row in sql.query().fetch_all(&mut **tx).await.map_err(db_err)? {
                    existing.insert(
                        (call.run_id.clone(), get_str(&row, "key")),
                        get_str(&row, "value"),
                    );
                }
            }
        }
        Ok(existing)
    }
}

fn check_run_accepts_writes(run_id: &str, stage: Option<&String>) -> Result<()> {
    match stage {
        None => Err(Error::not_found(format!("Run with id={run_id} not found"))),
        Some(stage) if stage != LifecycleStage::Active.as_str() => Err(Error::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {stage}."
        ))),
        Some(_) => Ok(()),
    }
}

/// The params of `call` not stored yet, or MLflow's refusal when one would change a value.
fn fresh_params<'c>(
    call: &'c LogCall,
    existing: &HashMap<(String, String), String>,
) -> Result<Vec<&'c KeyValue>> {
    let run_id = call.run_id.as_str();
    let stored = |p: &KeyValue| existing.get(&(call.run_id.clone(), p.key.clone()));
    let changed: Vec<(&KeyValue, &String)> = call
        .params
        .iter()
        .filter_map(|p| stored(p).filter(|old| **old != p.value).map(|old| (p, old)))
        .collect();
    if let (LogShape::Single, Some((p, old))) = (call.shape, changed.first()) {
        return Err(Error::invalid(format!(
            "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run ID='{run_id}'. Attempted logging new value '{}'.",
            p.key, old, p.value
        )));
    }
    if !changed.is_empty() {
        let listed: Vec<String> = changed
            .iter()
            .map(|(p, old)| {
                format!(
                    "{{'key': '{}', 'old_value': '{}', 'new_value': '{}'}}",
                    p.key, old, p.value
                )
            })
            .collect();
        return Err(Error::invalid(format!(
            "Changing param values is not allowed. Params were already logged='[{}]' for run ID='{run_id}'.",
            listed.join(", ")
        )));
    }
    Ok(call.params.iter().filter(|p| stored(p).is_none()).collect())
}

fn push_param_inserts(script: &mut Script, dialect: Dialect, run_id: &str, params: &[&KeyValue]) {
    for chunk in params.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::for_dialect(
            dialect,
            &format!(
                "{} params (run_uuid, key, value) VALUES ",
                insert_or_ignore(dialect)
            ),
        );
        sql.bind_rows(chunk, |p| {
            [
                Bind::Str(run_id.to_string()),
                Bind::Str(p.key.clone()),
                Bind::Str(p.value.clone()),
            ]
        });
        sql.push(on_conflict_ignore(dialect));
        script.push(sql);
    }
}

fn stored_value(m: &Metric) -> (f64, i64) {
    if m.value.is_nan() {
        (0.0, 1)
    } else {
        (m.value, 0)
    }
}

/// The newest point per (run, key) among `points`, by MLflow's order: step, then timestamp,
/// then value; in (run, key) order.
fn newest_per_key<'m>(points: &[(&'m str, &'m Metric)]) -> Vec<(&'m str, &'m Metric)> {
    let mut best: HashMap<(&str, &str), &Metric> = HashMap::new();
    for &(run_id, m) in points {
        let stored = |m: &Metric| stored_value(m).0;
        best.entry((run_id, m.key.as_str()))
            .and_modify(|cur| {
                let newer = (m.step, m.timestamp)
                    .cmp(&(cur.step, cur.timestamp))
                    .then(
                        stored(m)
                            .partial_cmp(&stored(cur))
                            .unwrap_or(std::cmp::Ordering::Equal),
                    )
                    .is_gt();
                if newer {
                    *cur = m;
                }
            })
            .or_insert(m);
    }
    let mut out: Vec<(&str, &Metric)> = best.into_iter().map(|((r, _), m)| (r, m)).collect();
    // A fixed order keeps concurrent writers from locking rows in opposite orders.
    out.sort_by(|a, b| (a.0, a.1.key.as_str()).cmp(&(b.0, b.1.key.as_str())));
    out
}

/// The points themselves, the latest value of each (run, key), and the points that belong to
/// a logged model as well.
fn push_metric_writes<'m>(
    script: &mut Script,
    dialect: Dialect,
    points: &mut Vec<(&'m str, &'m Metric)>,
) {
    // Rows in primary-key order walk the B-tree forward instead of seeking afresh for each:
    // a training loop's batch lists steps first and keys second, the opposite of the key.
    points.sort_by(|(ra, a), (rb, b)| {
        (*ra, a.key.as_str(), a.timestamp, a.step).cmp(&(*rb, b.key.as_str(), b.timestamp, b.step))
    });
    for chunk in points.chunks(METRIC_ROWS_PER_INSERT) {
        let mut sql = Sql::for_dialect(
            dialect,
            &format!(
                "{} metrics (run_uuid, key, step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest) VALUES ",
                insert_or_ignore(dialect)
            ),
        );
        sql.bind_rows(chunk, |(run_id, m)| {
            let (value, is_nan) = stored_value(m);
            [
                Bind::Str(run_id.to_string()),
                Bind::Str(m.key.clone()),
                Bind::I64(m.step),
                Bind::I64(m.timestamp),
                Bind::F64(value),
                Bind::I64(is_nan),
                Bind::OptStr(m.model_id.clone()),
                Bind::OptStr(m.dataset_name.clone()),
                Bind::OptStr(m.dataset_digest.clone()),
            ]
        });
        sql.push(on_conflict_ignore(dialect));
        script.push(sql);
    }

    let newest = newest_per_key(points);
    for chunk in newest.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::for_dialect(
            dialect,
            &format!(
                "{} latest_metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES ",
                insert_or_ignore(dialect)
            ),
        );
        sql.bind_rows(chunk, |(run_id, m)| {
            let (value, is_nan) = stored_value(m);
            [
                Bind::Str(run_id.to_string()),
                Bind::Str(m.key.clone()),
                Bind::F64(value),
                Bind::I64(is_nan),
                Bind::I64(m.timestamp),
                Bind::I64(m.step),
            ]
        });
        sql.push(
            " ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan, \
             timestamp = excluded.timestamp, step = excluded.step \
             WHERE excluded.step > latest_metrics.step \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp AND excluded.value > latest_metrics.value)",
        );
        script.push(sql);
    }

    let of_models: Vec<&(&str, &Metric)> = points
        .iter()
        .filter(|(_, m)| m.model_id.is_some())
        .collect();
    for chunk in of_models.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::for_dialect(
            dialect,
            &format!(
                "{} logged_model_metrics (model_id, key, step, timestamp, value, is_nan, run_uuid, dataset_name, dataset_digest) VALUES ",
                insert_or_ignore(dialect)
            ),
        );
        sql.bind_rows(chunk, |(run_id, m)| {
            let (value, is_nan) = stored_value(m);
            [
                Bind::Str(m.model_id.clone().unwrap_or_default()),
                Bind::Str(m.key.clone()),
                Bind::I64(m.step),
                Bind::I64(m.timestamp),
                Bind::F64(value),
                Bind::I64(is_nan),
                Bind::Str(run_id.to_string()),
                Bind::OptStr(m.dataset_name.clone()),
                Bind::OptStr(m.dataset_digest.clone()),
            ]
        });
        sql.push(on_conflict_ignore(dialect));
        script.push(sql);
    }
}

/// How an insert that skips rows already stored starts. On SQLite, `OR IGNORE` (every bound value is non-null, so
/// it only ever skips duplicates) means no row of the statement can abort it, which spares
/// SQLite the statement journal, a copy of every page the statement touches.
fn insert_or_ignore(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "INSERT OR IGNORE INTO",
        Dialect::Postgres => "INSERT INTO",
    }
}

/// How an insert that began with [`insert_or_ignore`] skips duplicates.
fn on_conflict_ignore(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " ON CONFLICT DO NOTHING",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(key: &str, step: i64, timestamp: i64, value: f64) -> Metric {
        Metric {
            key: key.to_string(),
            value,
            timestamp,
            step,
            dataset_name: None,
            dataset_digest: None,
            model_id: None,
            run_id: None,
        }
    }

    fn call(run_id: &str, keys: usize, steps: i64) -> LogCall {
        let metrics = (0..steps)
            .flat_map(|step| (0..keys).map(move |k| point(&format!("m{k}"), step, 1, 0.5)))
            .collect();
        LogCall {
            run_id: run_id.to_string(),
            metrics,
            params: Vec::new(),
            tags: Vec::new(),
            shape: LogShape::Batch,
        }
    }

    #[test]
    fn pages_are_counted_per_run_and_key_not_per_point() {
        // Ten runs logging ten keys each touch a hundred leaves.
        let spread: Vec<LogCall> = (0..10).map(|r| call(&format!("r{r}"), 10, 1)).collect();
        assert_eq!(pages_dirtied(spread.iter()), 100 + 10);
        // The same hundred points as ten steps of ten keys of one run: ten leaves.
        let one_run = [call("r", 10, 10)];
        assert_eq!(pages_dirtied(one_run.iter()), 10 + 1 + 2);
        // Two calls on one run and key share the leaf.
        let same = [call("r", 1, 1), call("r", 1, 1)];
        assert_eq!(pages_dirtied(same.iter()), 1 + 2);
    }

    #[test]
    fn the_newest_point_per_run_and_key_wins_by_step_then_timestamp_then_value() {
        let m = point;
        let points = [
            m("loss", 2, 5, 0.1),
            m("loss", 3, 1, 0.9),
            m("loss", 3, 1, 0.95),
            m("loss", 3, 0, 9.0),
            m("acc", 1, 1, f64::NAN),
        ];
        let a: Vec<(&str, &Metric)> = points.iter().map(|p| ("a", p)).collect();
        let b = [("b", &points[0])];
        let all: Vec<(&str, &Metric)> = a.iter().chain(b.iter()).copied().collect();
        let newest: Vec<(&str, &str, i64, f64)> = newest_per_key(&all)
            .into_iter()
            .map(|(r, m)| (r, m.key.as_str(), m.step, stored_value(m).0))
            .collect();
        assert_eq!(
            newest,
            vec![
                ("a", "acc", 1, 0.0),
                ("a", "loss", 3, 0.95),
                ("b", "loss", 2, 0.1)
            ]
        );
    }
}
