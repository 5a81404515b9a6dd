//! Metric histories: where a run's points live and how they come back in MLflow's order.
//!
//! New points land in `metrics`, clustered by (run, key, timestamp, step, value), where a log
//! call's insert is cheap. Once a series (one key of one run) holds [`BLOCK_POINTS`] points
//! there, its oldest whole blocks are *sealed*: deleted from `metrics` and written to
//! `metric_blocks` as one packed value per block ([`encode_block`]: delta-coded timestamps and
//! steps, the values' bits). A history of 100,000 points is then about a hundred rows instead of
//! 100,000, and reading it costs decoding memory, not a database row per point.
//!
//! Reads take both tables in one statement, so one snapshot, merge them in MLflow's order
//! (timestamp, step, value) and drop duplicates: a point logged again after its block was
//! sealed lands in `metrics` a second time, where the primary key no longer sees the first.
//! Pages are keyset pages: the token holds the last point returned, so page *n* starts where
//! page *n − 1* ended instead of sorting and skipping everything before it.
//!
//! On SQLite, which series to seal is counted in memory ([`SealCounts`]): a fixed table of
//! counters indexed by a hash of (run, key), so its size never grows. A counter that reaches a
//! block's worth names the series that pushed it there, whose real count the seal then reads.
//! PostgreSQL seals the series its history reads find long (see [`SealCounts`] for why). Series
//! whose counter was shared or lost with a restart are found by [`SqlStore::seal_metric_histories`],
//! which the store runs when it opens and `mlox import` runs after copying.

use crate::db::{Bind, SqlStore, db_err, get_f64, get_i64, get_opt_i64, get_opt_str, get_str};
use mlox_core::{Error, Result};
use sqlx::{Connection as _, Row as _};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

/// Points per sealed block: at about 11 bytes a point (a training loop's steps and
/// timestamps delta-code to a byte or two each), a block is some 11 KiB.
pub(crate) const BLOCK_POINTS: usize = 1024;

/// The version byte every block starts with, so a later layout can be told apart.
const BLOCK_FORMAT: u8 = 1;

/// One point of a history as it is stored: a NaN is stored as value 0 with `is_nan` set,
/// as MLflow's schema does, which is also what orders it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricPoint {
    pub timestamp: i64,
    pub step: i64,
    stored_value: f64,
    is_nan: bool,
}

impl MetricPoint {
    pub fn new(timestamp: i64, step: i64, value: f64) -> Self {
        let is_nan = value.is_nan();
        MetricPoint {
            timestamp,
            step,
            stored_value: if is_nan { 0.0 } else { value },
            is_nan,
        }
    }

    /// A point as a row stores it.
    pub(crate) fn stored(timestamp: i64, step: i64, stored_value: f64, is_nan: bool) -> Self {
        MetricPoint {
            timestamp,
            step,
            stored_value,
            is_nan,
        }
    }

    /// The value as logged (NaN again for a NaN).
    pub fn value(&self) -> f64 {
        if self.is_nan {
            f64::NAN
        } else {
            self.stored_value
        }
    }

    /// MLflow's history order, with `is_nan` last so that the order is total over what a
    /// series can hold (stored values are never NaN).
    fn order(&self, other: &Self) -> Ordering {
        (self.timestamp, self.step)
            .cmp(&(other.timestamp, other.step))
            .then(
                self.stored_value
                    .partial_cmp(&other.stored_value)
                    .unwrap_or(Ordering::Equal),
            )
            .then(self.is_nan.cmp(&other.is_nan))
    }

    /// The same point in the sense of the table's primary key.
    fn same(&self, other: &Self) -> bool {
        self.order(other) == Ordering::Equal
    }

    fn bind_key(&self, sql: &mut crate::db::Sql) {
        sql.push("(")
            .bind_i64(self.timestamp)
            .push(", ")
            .bind_i64(self.step)
            .push(", ")
            .bind_f64(self.stored_value)
            .push(", ")
            .bind_i64(i64::from(self.is_nan))
            .push(")");
    }
}

/// A page of one series: its points in MLflow's order and the token of the next page.
#[derive(Debug)]
pub struct HistoryPage {
    pub points: Vec<MetricPoint>,
    pub next_page_token: Option<String>,
}

// ------------------------------------------------------------------------------ blocks

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Packs points (in any order; they are stored as given) into one block.
pub(crate) fn encode_block(points: &[MetricPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + points.len() * 12);
    out.push(BLOCK_FORMAT);
    put_varint(&mut out, points.len() as u64);
    let (mut ts, mut step) = (0i64, 0i64);
    for p in points {
        put_varint(&mut out, zigzag(p.timestamp.wrapping_sub(ts)));
        put_varint(&mut out, zigzag(p.step.wrapping_sub(step)));
        out.push(u8::from(p.is_nan));
        out.extend_from_slice(&p.stored_value.to_bits().to_le_bytes());
        (ts, step) = (p.timestamp, p.step);
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn corrupt() -> Error {
        Error::internal("a stored metric block is corrupt")
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.at).ok_or_else(Self::corrupt)?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Self::corrupt())
    }

    fn bits(&mut self) -> Result<u64> {
        let bytes = self
            .data
            .get(self.at..self.at + 8)
            .ok_or_else(Self::corrupt)?;
        self.at += 8;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(raw))
    }
}

/// Appends the points of one block to `out`.
pub(crate) fn decode_block(data: &[u8], out: &mut Vec<MetricPoint>) -> Result<()> {
    let mut r = Reader { data, at: 0 };
    if r.byte()? != BLOCK_FORMAT {
        return Err(Error::internal(
            "a stored metric block has a format this mlox does not know",
        ));
    }
    let n = r.varint()?;
    // Each point takes at least 11 bytes, so a count the data cannot hold is corruption
    // (and must not size an allocation).
    if n > (data.len() / 11) as u64 {
        return Err(Reader::corrupt());
    }
    out.reserve(n as usize);
    let (mut ts, mut step) = (0i64, 0i64);
    for _ in 0..n {
        ts = ts.wrapping_add(unzigzag(r.varint()?));
        step = step.wrapping_add(unzigzag(r.varint()?));
        let is_nan = match r.byte()? {
            0 => false,
            1 => true,
            _ => return Err(Reader::corrupt()),
        };
        let stored_value = f64::from_bits(r.bits()?);
        out.push(MetricPoint {
            timestamp: ts,
            step,
            stored_value,
            is_nan,
        });
    }
    if r.at != data.len() {
        return Err(Reader::corrupt());
    }
    Ok(())
}

/// Sorts points into MLflow's order and drops repeats of a point.
fn sort_and_dedup(points: &mut Vec<MetricPoint>) {
    // Blocks arrive as sorted runs, which the stable sort merges in about linear time.
    points.sort_by(MetricPoint::order);
    points.dedup_by(|later, earlier| later.same(earlier));
}

// ------------------------------------------------------------------------ page tokens

/// A history page token: the offset MLflow's tokens carry, for clients that read it, and the
/// last point returned, which is where the next page starts.
fn encode_token(offset: u64, last: &MetricPoint) -> String {
    mlox_core::page_token::encode_object(serde_json::json!({
        "offset": offset,
        "after": [last.timestamp, last.step, last.stored_value.to_bits(), last.is_nan],
    }))
}

/// Where a page starts: after a point, or (a token without one, as MLflow and older mlox
/// servers write) after skipping `offset` points.
enum PageStart {
    After(u64, MetricPoint),
    Offset(u64),
}

fn decode_token(token: Option<&str>) -> Result<PageStart> {
    let Some(object) = mlox_core::page_token::decode_object(token)? else {
        return Ok(PageStart::Offset(0));
    };
    let offset = object.get("offset").and_then(|o| o.as_u64());
    let after = object.get("after").and_then(|a| {
        let a = a.as_array()?;
        match a.as_slice() {
            [ts, step, bits, nan] => Some(MetricPoint {
                timestamp: ts.as_i64()?,
                step: step.as_i64()?,
                stored_value: f64::from_bits(bits.as_u64()?),
                is_nan: nan.as_bool()?,
            }),
            _ => None,
        }
    });
    match (offset, after) {
        (Some(offset), Some(after)) => Ok(PageStart::After(offset, after)),
        (Some(offset), None) if object.get("after").is_none() => Ok(PageStart::Offset(offset)),
        _ => Err(Error::invalid(format!(
            "Invalid page token, decoded value={}",
            serde_json::Value::Object(object)
        ))),
    }
}

// ------------------------------------------------------------- points as SQLite text

/// A point as SQLite writes it as text: `timestamp step is_nan value`, the value with 17
/// significant digits.
const SQLITE_POINT_TEXT: &str =
    "timestamp || ' ' || step || ' ' || is_nan || ' ' || printf('%!.17g', value)";

/// The values whose 17 digits from SQLite name the double exactly. SQLite's conversion is
/// not correctly rounded everywhere: beyond about 1e±80 some doubles come back one unit off
/// (`sqlite_writes_the_doubles_of_metrics_exactly` checks the range kept here, with a wide
/// margin). Metric values almost never lie outside it; those that do are read as rows.
const SQLITE_EXACT_TEXT_RANGE: &str = "(value = 0 OR abs(value) BETWEEN 1e-40 AND 1e40)";

/// Points from a comma-separated list of `timestamp step is_nan value` texts, as SQLite
/// ([`SQLITE_POINT_TEXT`]) and PostgreSQL write them.
fn parse_point_texts(text: &str) -> Result<Vec<MetricPoint>> {
    let bad = || Error::internal("SQLite wrote a metric point in an unexpected form");
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|point| {
            let mut parts = point.split(' ');
            let mut next = || parts.next().ok_or_else(bad);
            let timestamp = next()?.parse().map_err(|_| bad())?;
            let step = next()?.parse().map_err(|_| bad())?;
            let is_nan = next()? != "0";
            let stored_value = match next()? {
                "Inf" | "+Inf" | "Infinity" => f64::INFINITY,
                "-Inf" | "-Infinity" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| bad())?,
            };
            Ok(MetricPoint::stored(timestamp, step, stored_value, is_nan))
        })
        .collect()
}

// ---------------------------------------------------------------------- seal counting

/// Counters of points written per series since its last seal, shared by series whose
/// (run, key) hash to the same slot.
///
/// Only SQLite seals as it writes. On PostgreSQL a seal's delete costs about what the insert
/// of its points did (each deleted row is WAL-logged and leaves its indexes), which took a
/// fifth off log-batch throughput; there a read that finds [`SEAL_ON_READ_AT`] unsealed
/// points seals the series instead, so the cost is paid for histories someone reads.
pub(crate) struct SealCounts {
    slots: Box<[AtomicU32]>,
    /// Series a seal task is working on, so that concurrent readers start one between them.
    sealing: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

/// Passes one seal task makes over a series that keeps filling while it is sealed.
const MAX_SEAL_PASSES: usize = 16;

/// Unsealed points a PostgreSQL history read must find to seal the series.
const SEAL_ON_READ_AT: usize = 2 * BLOCK_POINTS;

impl Default for SealCounts {
    fn default() -> Self {
        SealCounts {
            slots: (0..4096).map(|_| AtomicU32::new(0)).collect(),
            sealing: Default::default(),
        }
    }
}

impl std::fmt::Debug for SealCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealCounts")
    }
}

impl SealCounts {
    /// Counts written points; answers the series whose counter reached a block's worth (and
    /// starts that counter again).
    pub(crate) fn add<'p>(
        &self,
        points: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) -> Vec<(String, String)> {
        let mut per_series: HashMap<(&str, &str), u32> = HashMap::new();
        for series in points {
            *per_series.entry(series).or_default() += 1;
        }
        let mut due = Vec::new();
        for ((run, key), n) in per_series {
            let mut hasher = std::hash::DefaultHasher::new();
            (run, key).hash(&mut hasher);
            let slot = &self.slots[hasher.finish() as usize % self.slots.len()];
            let total = slot.fetch_add(n, AtomicOrdering::Relaxed).saturating_add(n);
            if total as usize >= BLOCK_POINTS {
                slot.store(0, AtomicOrdering::Relaxed);
                due.push((run.to_string(), key.to_string()));
            }
        }
        due.sort();
        due
    }
}

// ------------------------------------------------------------------------- the store

fn point_of(row: &sqlx::any::AnyRow) -> MetricPoint {
    MetricPoint::stored(
        get_i64(row, "timestamp"),
        get_i64(row, "step"),
        get_f64(row, "value"),
        get_i64(row, "is_nan") != 0,
    )
}

impl SqlStore {
    /// A statement on one series: `head` (ending in `run_uuid = `) with the run and key bound.
    fn series_sql(&self, head: &str, run_id: &str, key: &str) -> crate::db::Sql {
        let mut sql = self.sql(head);
        sql.bind_str(run_id).push(" AND key = ").bind_str(key);
        sql
    }

    /// One series' points after `after` (all of them without), in MLflow's order, at most
    /// `limit`. Sealed blocks and recent rows come from one statement, so one snapshot: a seal
    /// committing meanwhile can neither hide points nor show them twice.
    pub(crate) async fn read_series(
        &self,
        run_id: &str,
        key: &str,
        after: Option<&MetricPoint>,
        limit: Option<usize>,
    ) -> Result<Vec<MetricPoint>> {
        let mut sql = self.sql(
            "SELECT data, NULL AS timestamp, NULL AS step, NULL AS value, NULL AS is_nan \
             FROM metric_blocks WHERE run_uuid = ",
        );
        sql.bind_str(run_id).push(" AND key = ").bind_str(key);
        if let Some(after) = after {
            sql.push(" AND (last_timestamp, last_step, last_value, last_is_nan) > ");
            after.bind_key(&mut sql);
        }
        // The NULL stays outside the sub-select: PostgreSQL types an untyped NULL leaving a
        // sub-select as text, which would not unite with the blocks' bytes.
        sql.push(
            " UNION ALL SELECT NULL AS data, timestamp, step, value, is_nan FROM \
             (SELECT timestamp, step, value, is_nan FROM metrics WHERE run_uuid = ",
        );
        sql.bind_str(run_id).push(" AND key = ").bind_str(key);
        if let Some(after) = after {
            sql.push(" AND (timestamp, step, value, is_nan) > ");
            after.bind_key(&mut sql);
        }
        sql.push(" ORDER BY timestamp, step, value, is_nan");
        if let Some(limit) = limit {
            sql.push(" LIMIT ").bind_i64(limit as i64);
        }
        sql.push(") AS recent");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let mut points = Vec::with_capacity(rows.len());
        let mut unsealed = 0;
        for row in &rows {
            match row.try_get::<Option<Vec<u8>>, _>("data").ok().flatten() {
                Some(data) => decode_block(&data, &mut points)?,
                None => {
                    unsealed += 1;
                    points.push(point_of(row));
                }
            }
        }
        // PostgreSQL seals the histories that are read (see `SealCounts`).
        if self.dialect == crate::Dialect::Postgres && unsealed >= SEAL_ON_READ_AT {
            self.seal_in_background(vec![(run_id.to_string(), key.to_string())]);
        }
        if let Some(after) = after {
            points.retain(|p| p.order(after) == Ordering::Greater);
        }
        sort_and_dedup(&mut points);
        if let Some(limit) = limit {
            points.truncate(limit);
        }
        Ok(points)
    }

    /// A page of one series' history (the whole history without `max_results`).
    pub(crate) async fn history_page(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<HistoryPage> {
        let start = decode_token(page_token)?;
        let want = max_results.map(|m| m as usize);
        let (offset, mut points) = match start {
            PageStart::After(offset, after) => (
                offset,
                self.read_series(run_id, key, Some(&after), want.map(|m| m + 1))
                    .await?,
            ),
            PageStart::Offset(offset) => {
                let mut all = self.read_series(run_id, key, None, None).await?;
                let skip = (offset as usize).min(all.len());
                all.drain(..skip);
                (offset, all)
            }
        };
        let mut next_page_token = None;
        if let Some(max) = want
            && points.len() > max
        {
            points.truncate(max);
            if let Some(last) = points.last() {
                next_page_token = Some(encode_token(offset + max as u64, last));
            }
        }
        Ok(HistoryPage {
            points,
            next_page_token,
        })
    }

    /// Seals one series' oldest whole blocks if `metrics` holds at least one block of it;
    /// answers how many points were sealed. Never loses a point: on PostgreSQL the rows
    /// deleted are the rows packed (`DELETE … RETURNING` in one transaction); on SQLite see
    /// [`Self::seal_beside_the_writer`].
    pub(crate) async fn seal_series(&self, run_id: &str, key: &str) -> Result<usize> {
        match self.dialect {
            crate::Dialect::Sqlite => self.seal_beside_the_writer(run_id, key).await,
            crate::Dialect::Postgres => self.seal_in_one_transaction(run_id, key).await,
        }
    }

    /// SQLite has one writer, which the log calls keep busy, so the costly part of a seal
    /// (reading the series' rows out of the database and packing them) happens on a reader
    /// connection first, and the writer's transaction usually only checks, deletes and
    /// inserts. The check: the rows up to the last point packed are still exactly as many as
    /// were read. Rows are only ever added meanwhile (a seal is the only delete of live points,
    /// and this one holds the writer), so an equal count means the same rows; a point logged
    /// out of order into the range makes it differ, and then the rows are read again inside
    /// the writer's transaction, where nothing can change under them.
    async fn seal_beside_the_writer(&self, run_id: &str, key: &str) -> Result<usize> {
        let mut points = self.unsealed_points(run_id, key, &self.read).await?;
        points.truncate(points.len() / BLOCK_POINTS * BLOCK_POINTS);
        if points.is_empty() {
            return Ok(0);
        }
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        if let Some(last) = points.last() {
            let mut sql = self.series_sql(
                "SELECT COUNT(*) AS n FROM metrics WHERE run_uuid = ",
                run_id,
                key,
            );
            sql.push(" AND (timestamp, step, value, is_nan) <= ");
            last.bind_key(&mut sql);
            let now = get_i64(&sql.query().fetch_one(&mut *tx).await.map_err(db_err)?, "n");
            if now != points.len() as i64 {
                points = self.unsealed_points(run_id, key, &mut *tx).await?;
                points.truncate(points.len() / BLOCK_POINTS * BLOCK_POINTS);
            }
        }
        let Some(last) = points.last().copied() else {
            return Ok(0);
        };
        let mut sql = self.series_sql("DELETE FROM metrics WHERE run_uuid = ", run_id, key);
        sql.push(" AND (timestamp, step, value, is_nan) <= ");
        last.bind_key(&mut sql);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        self.insert_blocks(&mut tx, run_id, key, &points).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(points.len())
    }

    /// A SQLite series' points in `metrics`, sorted. One row of text instead of a row per
    /// point (handing rows over one by one costs more than everything else a seal does), with
    /// the rare values text cannot carry exactly as rows of their own; one statement, so one
    /// snapshot.
    async fn unsealed_points<'c, E>(
        &self,
        run_id: &str,
        key: &str,
        executor: E,
    ) -> Result<Vec<MetricPoint>>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let mut sql = self.series_sql(&format!(
            "SELECT group_concat(CASE WHEN {SQLITE_EXACT_TEXT_RANGE} THEN {SQLITE_POINT_TEXT} END, ',') \
             AS points, NULL AS timestamp, NULL AS step, NULL AS value, NULL AS is_nan \
             FROM metrics WHERE run_uuid = "
        ), run_id, key);
        sql.push(
            " UNION ALL SELECT NULL, timestamp, step, value, is_nan FROM metrics WHERE run_uuid = ",
        );
        sql.bind_str(run_id).push(" AND key = ").bind_str(key);
        sql.push(&format!(" AND NOT {SQLITE_EXACT_TEXT_RANGE}"));
        let mut points = Vec::new();
        for row in sql.query().fetch_all(executor).await.map_err(db_err)? {
            match get_opt_str(&row, "points") {
                Some(text) => points.extend(parse_point_texts(&text)?),
                None if get_opt_i64(&row, "timestamp").is_some() => points.push(point_of(&row)),
                None => {}
            }
        }
        sort_and_dedup(&mut points);
        Ok(points)
    }

    /// PostgreSQL's seal: replicas write concurrently, so the rows packed are the rows the
    /// transaction deleted.
    async fn seal_in_one_transaction(&self, run_id: &str, key: &str) -> Result<usize> {
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        let sql = self.series_sql(
            "SELECT COUNT(*) AS n FROM metrics WHERE run_uuid = ",
            run_id,
            key,
        );
        let n = get_i64(&sql.query().fetch_one(&mut *tx).await.map_err(db_err)?, "n") as usize;
        let whole = n / BLOCK_POINTS * BLOCK_POINTS;
        if whole == 0 {
            return Ok(0);
        }
        let mut sql = self.series_sql(
            "SELECT timestamp, step, value, is_nan FROM metrics WHERE run_uuid = ",
            run_id,
            key,
        );
        sql.push(" ORDER BY timestamp, step, value, is_nan LIMIT 1 OFFSET ")
            .bind_i64(whole as i64 - 1);
        let Some(boundary) = sql.query().fetch_optional(&mut *tx).await.map_err(db_err)? else {
            return Ok(0);
        };
        let boundary = point_of(&boundary);
        let mut sql = self.series_sql("DELETE FROM metrics WHERE run_uuid = ", run_id, key);
        sql.push(" AND (timestamp, step, value, is_nan) <= ");
        boundary.bind_key(&mut sql);
        // The deleted rows come back as one row of text (PostgreSQL writes a double's
        // shortest exact digits), not a row per point.
        sql.push(
            " RETURNING timestamp, step, value, is_nan) \
             SELECT string_agg(timestamp || ' ' || step || ' ' || is_nan || ' ' || value::text, ',') \
             AS points FROM gone",
        );
        sql.text.insert_str(0, "WITH gone AS (");
        let row = sql.query().fetch_one(&mut *tx).await.map_err(db_err)?;
        let mut points = parse_point_texts(&get_str(&row, "points"))?;
        sort_and_dedup(&mut points);
        self.insert_blocks(&mut tx, run_id, key, &points).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(points.len())
    }

    /// Packs sorted points into blocks appended after the series' last one.
    async fn insert_blocks(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run_id: &str,
        key: &str,
        points: &[MetricPoint],
    ) -> Result<()> {
        let sql = self.series_sql(
            "SELECT COALESCE(MAX(seq), -1) + 1 AS next FROM metric_blocks WHERE run_uuid = ",
            run_id,
            key,
        );
        let mut seq = get_i64(
            &sql.query().fetch_one(&mut **tx).await.map_err(db_err)?,
            "next",
        );
        for block in points.chunks(BLOCK_POINTS) {
            let (Some(first), Some(last)) = (block.first(), block.last()) else {
                continue;
            };
            let mut sql = self.sql(
                "INSERT INTO metric_blocks (run_uuid, key, seq, first_timestamp, last_timestamp, \
                 last_step, last_value, last_is_nan, points, data) VALUES ",
            );
            sql.bind_list([
                Bind::Str(run_id.to_string()),
                Bind::Str(key.to_string()),
                Bind::I64(seq),
                Bind::I64(first.timestamp),
                Bind::I64(last.timestamp),
                Bind::I64(last.step),
                Bind::F64(last.stored_value),
                Bind::I64(i64::from(last.is_nan)),
                Bind::I64(block.len() as i64),
                Bind::Bytes(encode_block(block)),
            ]);
            sql.query().execute(&mut **tx).await.map_err(db_err)?;
            seq += 1;
        }
        Ok(())
    }

    /// Seals, in a task of its own, the series a write pushed over a block's worth: the
    /// write has been committed and answered, and the next ones need not wait. A failed seal
    /// changed nothing (it is one transaction) and is only logged.
    pub(crate) fn seal_in_background(&self, mut due: Vec<(String, String)>) {
        if let Ok(mut sealing) = self.seal_counts.sealing.lock() {
            due.retain(|series| sealing.insert(series.clone()));
        }
        if due.is_empty() {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            for (run_id, key) in due {
                // Points keep coming while a seal runs, and a series being sealed is not
                // claimed again, so the task goes on until a pass finds no whole block.
                for _ in 0..MAX_SEAL_PASSES {
                    match store.seal_series(&run_id, &key).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(run_id, key, error = %e, "could not seal a metric history block");
                            break;
                        }
                    }
                }
                if let Ok(mut sealing) = store.seal_counts.sealing.lock() {
                    sealing.remove(&(run_id, key));
                }
            }
        });
    }

    /// Seals every series that holds a block's worth of unsealed points: what the counters
    /// missed (a restart, an import, a database of an older mlox). Answers the points sealed.
    pub async fn seal_metric_histories(&self) -> Result<usize> {
        let mut sql = self
            .sql("SELECT run_uuid, key FROM metrics GROUP BY run_uuid, key HAVING COUNT(*) >= ");
        sql.bind_i64(BLOCK_POINTS as i64);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let mut sealed = 0;
        for row in rows {
            let series = (get_str(&row, "run_uuid"), get_str(&row, "key"));
            // A series a seal task is working on is left to it.
            let claimed = self
                .seal_counts
                .sealing
                .lock()
                .is_ok_and(|mut sealing| sealing.insert(series.clone()));
            if !claimed {
                continue;
            }
            let outcome = self.seal_series(&series.0, &series.1).await;
            if let Ok(mut sealing) = self.seal_counts.sealing.lock() {
                sealing.remove(&series);
            }
            sealed += outcome?;
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(timestamp: i64, step: i64, value: f64) -> MetricPoint {
        MetricPoint::new(timestamp, step, value)
    }

    #[test]
    fn a_training_loops_points_take_about_eleven_bytes_each() {
        let points: Vec<MetricPoint> = (0..BLOCK_POINTS as i64)
            .map(|s| p(1_700_000_000_000 + s * 37, s, 1.0 / (s as f64 + 1.0)))
            .collect();
        let block = encode_block(&points);
        assert!(block.len() < BLOCK_POINTS * 12 + 16, "{}", block.len());
        let mut back = Vec::new();
        decode_block(&block, &mut back).unwrap();
        assert_eq!(back, points);
    }

    #[test]
    fn nan_and_infinities_survive_a_block() {
        let points = [
            p(1, 1, f64::NAN),
            p(1, 1, f64::INFINITY),
            p(1, 1, f64::NEG_INFINITY),
            p(-5, i64::MIN, -0.0),
            p(i64::MAX, i64::MAX, f64::MIN_POSITIVE),
        ];
        let mut back = Vec::new();
        decode_block(&encode_block(&points), &mut back).unwrap();
        assert!(back[0].value().is_nan());
        assert_eq!(back[1].value(), f64::INFINITY);
        assert_eq!(back[2].value(), f64::NEG_INFINITY);
        assert_eq!(back[3..], points[3..]);
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let good = encode_block(&[p(1, 2, 3.0), p(4, 5, 6.0)]);
        for cut in 0..good.len() {
            assert!(
                decode_block(&good[..cut], &mut Vec::new()).is_err(),
                "{cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode_block(&longer, &mut Vec::new()).is_err());
        let mut other_format = good;
        other_format[0] = 9;
        assert!(decode_block(&other_format, &mut Vec::new()).is_err());
        // A count far beyond what the bytes hold is refused before anything is allocated.
        let mut huge = vec![BLOCK_FORMAT];
        put_varint(&mut huge, u64::MAX >> 1);
        assert!(decode_block(&huge, &mut Vec::new()).is_err());
    }

    #[test]
    fn histories_are_ordered_by_timestamp_then_step_then_value_without_repeats() {
        let mut points = vec![
            p(20, 0, 5.0),
            p(10, 2, 3.0),
            p(10, 1, 2.0),
            p(10, 1, f64::NAN),
            p(10, 1, 1.0),
            p(10, 1, 2.0),
            p(10, 1, 0.0),
        ];
        sort_and_dedup(&mut points);
        let shown: Vec<(i64, i64, String)> = points
            .iter()
            .map(|m| (m.timestamp, m.step, m.value().to_string()))
            .collect();
        // NaN is stored as 0 and sorts just after a real 0 of the same step and time.
        assert_eq!(
            shown,
            [
                (10, 1, "0".to_string()),
                (10, 1, "NaN".to_string()),
                (10, 1, "1".to_string()),
                (10, 1, "2".to_string()),
                (10, 2, "3".to_string()),
                (20, 0, "5".to_string()),
            ]
        );
    }

    #[test]
    fn page_tokens_carry_the_last_point_and_accept_plain_offsets() {
        let last = p(7, 8, f64::NAN);
        let token = encode_token(50, &last);
        match decode_token(Some(&token)).unwrap() {
            PageStart::After(offset, after) => {
                assert_eq!(offset, 50);
                assert!(after.same(&last));
            }
            PageStart::Offset(_) => panic!("a keyset token read as an offset"),
        }
        let plain = mlox_core::page_token::encode(25);
        assert!(matches!(
            decode_token(Some(&plain)).unwrap(),
            PageStart::Offset(25)
        ));
        assert!(matches!(decode_token(None).unwrap(), PageStart::Offset(0)));
        let broken =
            mlox_core::page_token::encode_object(serde_json::json!({"offset": 1, "after": [1, 2]}));
        assert_eq!(
            decode_token(Some(&broken)).err().map(|e| e.code),
            Some(mlox_core::Code::InvalidParameterValue)
        );
    }

    #[test]
    fn seal_counters_name_a_series_once_it_reaches_a_block() {
        let counts = SealCounts::default();
        let half: Vec<(&str, &str)> = vec![("run", "loss"); BLOCK_POINTS / 2];
        assert!(counts.add(half.iter().copied()).is_empty());
        assert_eq!(
            counts.add(half.iter().copied()),
            vec![("run".to_string(), "loss".to_string())]
        );
        // The counter starts again after naming the series.
        assert!(counts.add(half.iter().copied()).is_empty());
    }

    /// The seal reads most points as SQLite's text: within [`SQLITE_EXACT_TEXT_RANGE`] its 17
    /// digits must name every double exactly, and the rest must come through as rows.
    #[tokio::test]
    async fn sqlite_writes_the_doubles_of_metrics_exactly() {
        sqlx::any::install_default_drivers();
        // One connection: each would have a memory database of its own.
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE metrics (timestamp BIGINT, step BIGINT, value DOUBLE PRECISION, \
             is_nan INTEGER)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut values = vec![0.1, 1.0 / 3.0, 1e-40, 1e40, 123_456_789.123_456_79];
        let mut outside = vec![
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            4.425_160_402_714_337_5e284,
        ];
        while values.len() < 40_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = f64::from_bits(state);
            // Every exponent the range holds, twice as wide as it, and the rest.
            if v != 0.0 && (1e-80..=1e80).contains(&v.abs()) {
                values.push(v);
            } else if v.is_finite() && outside.len() < 2_000 {
                outside.push(v);
            }
        }
        values.append(&mut outside);
        values.extend([f64::INFINITY, f64::NEG_INFINITY, 0.0]);
        for chunk in values.chunks(500) {
            let mut sql = crate::db::Sql::for_dialect(
                crate::Dialect::Sqlite,
                "INSERT INTO metrics (timestamp, step, value, is_nan) VALUES ",
            );
            sql.bind_rows(chunk.iter().enumerate(), |(i, v)| {
                [
                    Bind::I64(i as i64 - 7),
                    Bind::I64(i64::MAX - i as i64),
                    Bind::F64(*v),
                    Bind::I64(0),
                ]
            });
            sql.query().execute(&pool).await.unwrap();
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT group_concat(CASE WHEN {SQLITE_EXACT_TEXT_RANGE} THEN {SQLITE_POINT_TEXT} END, ',') \
                 AS points, COUNT(*) - COUNT(CASE WHEN {SQLITE_EXACT_TEXT_RANGE} THEN 1 END) AS rest \
                 FROM metrics"
            )))
            .fetch_one(&pool)
            .await
            .unwrap();
            let as_text = parse_point_texts(&get_str(&row, "points")).unwrap();
            let in_range: Vec<(usize, f64)> = chunk
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, v)| *v == 0.0 || (1e-40..=1e40).contains(&v.abs()))
                .collect();
            assert_eq!(as_text.len(), in_range.len());
            assert_eq!(get_i64(&row, "rest") as usize, chunk.len() - in_range.len());
            for (p, (i, v)) in as_text.iter().zip(in_range) {
                assert_eq!(p.stored_value.to_bits(), v.to_bits(), "{v:e}");
                assert_eq!((p.timestamp, p.step), (i as i64 - 7, i64::MAX - i as i64));
            }
            sqlx::query("DELETE FROM metrics")
                .execute(&pool)
                .await
                .unwrap();
        }
    }

    fn point_strategy() -> impl Strategy<Value = MetricPoint> {
        (
            any::<i64>(),
            any::<i64>(),
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(-0.0)
            ],
        )
            .prop_map(|(t, s, v)| p(t, s, v))
    }

    proptest! {
        #[test]
        fn any_points_round_trip_through_a_block(points in prop::collection::vec(point_strategy(), 0..300)) {
            let mut back = Vec::new();
            decode_block(&encode_block(&points), &mut back).unwrap();
            prop_assert_eq!(back.len(), points.len());
            for (a, b) in back.iter().zip(&points) {
                prop_assert_eq!(a.timestamp, b.timestamp);
                prop_assert_eq!(a.step, b.step);
                prop_assert_eq!(a.stored_value.to_bits(), b.stored_value.to_bits());
                prop_assert_eq!(a.is_nan, b.is_nan);
            }
        }

        #[test]
        fn merged_histories_are_sorted_and_free_of_repeats(
            points in prop::collection::vec((0i64..5, 0i64..5, 0u8..4), 0..200)
        ) {
            let mut merged: Vec<MetricPoint> = points
                .iter()
                .map(|&(t, s, v)| p(t, s, if v == 3 { f64::NAN } else { f64::from(v) }))
                .collect();
            sort_and_dedup(&mut merged);
            for pair in merged.windows(2) {
                prop_assert_eq!(pair[0].order(&pair[1]), Ordering::Less);
            }
            for &(t, s, v) in &points {
                let q = p(t, s, if v == 3 { f64::NAN } else { f64::from(v) });
                prop_assert!(merged.iter().any(|m| m.same(&q)));
            }
        }
    }
}
