//! MLflow 3 evaluation datasets: the dataset rows with their tags, records and experiment links
//! (migration 5). The rules (record identity and merging, digest, schema, profile, the search
//! grammar) are `mlox_core::evaluation_datasets`'; this module reads and writes them, an upsert
//! in one transaction that holds the dataset's row (a row lock on PostgreSQL), so concurrent
//! upserts of the same inputs merge one after the other instead of colliding.

use crate::Dialect;
use crate::db::{
    Bind, IN_LIST_CHUNK, PageWindow, Sql, SqlStore, db_err, get_i64, get_opt_str, get_str, now_ms,
    positive_page_size,
};
use crate::search::{self, SearchSpec};
use mlox_core::entities::{KeyValue, Page};
use mlox_core::evaluation_datasets::{
    self as rules, DatasetRecord, EvaluationDataset, MLFLOW_USER_TAG, RecordCursor, RecordInput,
};
use mlox_core::search::SearchEntity;
use mlox_core::{Error, Result};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use std::collections::HashMap;

const DATASET_COLUMNS: &str = "ds.dataset_id, ds.name, ds.schema_json, ds.profile_json, ds.digest, ds.created_time, ds.last_update_time, ds.created_by, ds.last_updated_by";
const RECORD_COLUMNS: &str = "dataset_record_id, dataset_id, input_hash, inputs, outputs, expectations, tags, source, source_id, source_type, created_time, last_update_time, created_by, last_updated_by";

/// Most datasets one search page may hold, as in MLflow.
pub const MAX_DATASETS_PER_PAGE: i64 = 50_000;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

fn dataset_from_row(row: &AnyRow) -> EvaluationDataset {
    EvaluationDataset {
        dataset_id: get_str(row, "dataset_id"),
        name: get_str(row, "name"),
        tags: Vec::new(),
        schema: get_opt_str(row, "schema_json"),
        profile: get_opt_str(row, "profile_json"),
        digest: get_str(row, "digest"),
        created_time: get_i64(row, "created_time"),
        last_update_time: get_i64(row, "last_update_time"),
        created_by: get_opt_str(row, "created_by"),
        last_updated_by: get_opt_str(row, "last_updated_by"),
        experiment_ids: None,
    }
}

fn json_column(row: &AnyRow, column: &str) -> Option<Value> {
    get_opt_str(row, column).and_then(|text| serde_json::from_str(&text).ok())
}

fn object_column(row: &AnyRow, column: &str) -> Option<Map<String, Value>> {
    match json_column(row, column)? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn record_from_row(row: &AnyRow) -> DatasetRecord {
    DatasetRecord {
        dataset_record_id: get_str(row, "dataset_record_id"),
        dataset_id: get_str(row, "dataset_id"),
        inputs: object_column(row, "inputs").unwrap_or_default(),
        outputs: json_column(row, "outputs"),
        expectations: object_column(row, "expectations"),
        tags: object_column(row, "tags").unwrap_or_default(),
        source: json_column(row, "source"),
        source_id: get_opt_str(row, "source_id"),
        source_type: get_opt_str(row, "source_type"),
        created_time: get_i64(row, "created_time"),
        last_update_time: get_i64(row, "last_update_time"),
        created_by: get_opt_str(row, "created_by"),
        last_updated_by: get_opt_str(row, "last_updated_by"),
    }
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn not_found(dataset_id: &str) -> Error {
    Error::not_found(format!(
        "Evaluation dataset with id '{dataset_id}' not found"
    ))
}

/// The experiments that exist among `ids`, as numbers; the first that does not is an error in
/// MLflow's words (an id that is no number names no experiment either).
async fn existing_experiments(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    ids: &[String],
) -> Result<Vec<i64>> {
    let mut numbers = Vec::new();
    for id in ids {
        let missing = || Error::not_found(format!("No Experiment with id={id}"));
        let number: i64 = id.trim().parse().map_err(|_| missing())?;
        let mut sql = Sql::for_dialect(dialect, "SELECT 1 FROM experiments WHERE experiment_id = ");
        sql.bind_i64(number);
        if sql
            .query()
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .is_none()
        {
            return Err(missing());
        }
        if !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    Ok(numbers)
}

/// Inserts `rows` with one statement (`head` ends in `VALUES `); `conflict` says what becomes
/// of a row whose key is already there.
async fn insert_rows(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    head: &str,
    rows: Vec<Vec<Bind>>,
    conflict: &str,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::for_dialect(dialect, head);
    sql.bind_rows(rows, |row| row).push(conflict);
    sql.query().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

async fn link_experiments(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    dataset_id: &str,
    experiments: &[i64],
    now: i64,
) -> Result<()> {
    let rows = experiments
        .iter()
        .map(|e| vec![Bind::Str(dataset_id.into()), Bind::I64(*e), Bind::I64(now)])
        .collect();
    insert_rows(
        tx,
        dialect,
        "INSERT INTO evaluation_dataset_experiments (dataset_id, experiment_id, created_time) VALUES ",
        rows,
        " ON CONFLICT (dataset_id, experiment_id) DO NOTHING",
    )
    .await
}

async fn upsert_tags(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    dataset_id: &str,
    tags: &[KeyValue],
) -> Result<()> {
    // One statement may not change a row twice: the last value of a key wins.
    let latest: std::collections::BTreeMap<&str, &str> = tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    let rows = latest
        .into_iter()
        .map(|(k, v)| {
            vec![
                Bind::Str(dataset_id.into()),
                Bind::Str(k.into()),
                Bind::Str(v.into()),
            ]
        })
        .collect();
    insert_rows(
        tx,
        dialect,
        "INSERT INTO evaluation_dataset_tags (dataset_id, key, value) VALUES ",
        rows,
        " ON CONFLICT (dataset_id, key) DO UPDATE SET value = excluded.value",
    )
    .await
}

impl SqlStore {
    /// A new dataset in the given experiments (which must exist), tagged with `tags`; the
    /// `mlflow.user` tag names who created it.
    pub async fn create_evaluation_dataset(
        &self,
        name: &str,
        tags: &[KeyValue],
        experiment_ids: &[String],
    ) -> Result<EvaluationDataset> {
        let dataset_id = rules::new_dataset_id();
        let now = now_ms();
        let user = tags
            .iter()
            .find(|t| t.key == MLFLOW_USER_TAG)
            .map(|t| t.value.clone());
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let experiments = existing_experiments(&mut tx, self.dialect, experiment_ids).await?;
        let mut sql = self.sql("INSERT INTO evaluation_datasets (dataset_id, name, digest, created_time, last_update_time, created_by, last_updated_by) VALUES (");
        sql.bind_str(&dataset_id)
            .push(", ")
            .bind_str(name)
            .push(", ")
            .bind_str(rules::dataset_digest(name, now))
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind(Bind::OptStr(user.clone()))
            .push(", ")
            .bind(Bind::OptStr(user))
            .push(")");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        upsert_tags(&mut tx, self.dialect, &dataset_id, tags).await?;
        link_experiments(&mut tx, self.dialect, &dataset_id, &experiments, now).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_evaluation_dataset(&dataset_id).await
    }

    pub async fn get_evaluation_dataset(&self, dataset_id: &str) -> Result<EvaluationDataset> {
        let mut sql = self.sql(&format!(
            "SELECT {DATASET_COLUMNS} FROM evaluation_datasets ds WHERE ds.dataset_id = "
        ));
        sql.bind_str(dataset_id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found(dataset_id))?;
        Ok(self
            .complete_datasets(vec![dataset_from_row(&row)])
            .await?
            .remove(0))
    }

    /// The datasets with their tags and the experiments they belong to. MLflow's answers leave
    /// the experiments out for the client to fetch through the global tracking store; carrying
    /// them lets a client pointed at this server by its own URI see them too.
    async fn complete_datasets(
        &self,
        mut datasets: Vec<EvaluationDataset>,
    ) -> Result<Vec<EvaluationDataset>> {
        let ids: Vec<String> = datasets.iter().map(|d| d.dataset_id.clone()).collect();
        let mut tags = HashMap::new();
        self.collect_key_values("evaluation_dataset_tags", "dataset_id", &ids, &mut tags)
            .await?;
        let mut experiments: HashMap<String, Vec<String>> = HashMap::new();
        let rows = self
            .load_children(
                "SELECT dataset_id, experiment_id FROM evaluation_dataset_experiments WHERE dataset_id IN ",
                &ids,
                " ORDER BY created_time, experiment_id",
            )
            .await?;
        for row in rows {
            experiments
                .entry(get_str(&row, "dataset_id"))
                .or_default()
                .push(get_i64(&row, "experiment_id").to_string());
        }
        for dataset in &mut datasets {
            dataset.tags = tags.remove(&dataset.dataset_id).unwrap_or_default();
            dataset.experiment_ids =
                Some(experiments.remove(&dataset.dataset_id).unwrap_or_default());
        }
        Ok(datasets)
    }

    /// Removes a dataset with its tags, records and experiment links; a dataset that is not
    /// there is no error, as in MLflow.
    pub async fn delete_evaluation_dataset(&self, dataset_id: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        for table in [
            "evaluation_dataset_experiments",
            "evaluation_dataset_records",
            "evaluation_dataset_tags",
            "evaluation_datasets",
        ] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE dataset_id = "));
            sql.bind_str(dataset_id);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// Datasets by experiment, filter and order, `max_results` (default 1000, at most 50,000)
    /// at a time.
    pub async fn search_evaluation_datasets(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        max_results: Option<i64>,
        order_by: &[String],
        token: Option<&str>,
    ) -> Result<Page<EvaluationDataset>> {
        let size = positive_page_size(max_results, 1000, MAX_DATASETS_PER_PAGE, true)?;
        let window = PageWindow::new(token, size)?;
        let mut sql = self.sql(&format!(
            "SELECT {DATASET_COLUMNS} FROM evaluation_datasets ds WHERE 1 = 1"
        ));
        if !experiment_ids.is_empty() {
            // Ids that are no number name no experiment, so they match nothing.
            let numbers = numeric_ids(experiment_ids);
            if numbers.is_empty() {
                sql.push(" AND 1 = 0");
            } else {
                sql.push(" AND ds.dataset_id IN (SELECT dataset_id FROM evaluation_dataset_experiments WHERE experiment_id IN ");
                sql.bind_list(numbers).push(")");
            }
        }
        let spec = SearchSpec::for_entity(SearchEntity::EvaluationDatasets, self.dialect);
        search::push_filter(&spec, &mut sql, filter)?;
        search::push_order_by(&spec, &mut sql, order_by)?;
        window.push_limit(&mut sql);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let (datasets, next_page_token) =
            window.finish(rows.iter().map(dataset_from_row).collect());
        Ok(Page {
            items: self.complete_datasets(datasets).await?,
            next_page_token,
        })
    }

    /// Sets tags, keeping the others.
    pub async fn set_evaluation_dataset_tags(
        &self,
        dataset_id: &str,
        tags: &[KeyValue],
    ) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        if self.lock_dataset(&mut tx, dataset_id).await?.is_none() {
            return Err(Error::not_found(format!(
                "Could not find evaluation dataset with ID {dataset_id}"
            )));
        }
        upsert_tags(&mut tx, self.dialect, dataset_id, tags).await?;
        tx.commit().await.map_err(db_err)
    }

    /// Removes a tag; a missing tag or dataset is no error, as in MLflow.
    pub async fn delete_evaluation_dataset_tag(&self, dataset_id: &str, key: &str) -> Result<()> {
        let mut sql = self.sql("DELETE FROM evaluation_dataset_tags WHERE dataset_id = ");
        sql.bind_str(dataset_id).push(" AND key = ").bind_str(key);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    /// The dataset's row, held for the rest of the transaction on PostgreSQL.
    async fn lock_dataset(&self, tx: &mut Tx<'_>, dataset_id: &str) -> Result<Option<AnyRow>> {
        let mut sql = self.sql(&format!(
            "SELECT {DATASET_COLUMNS} FROM evaluation_datasets ds WHERE ds.dataset_id = "
        ));
        sql.bind_str(dataset_id);
        if self.dialect == Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        sql.query().fetch_optional(&mut **tx).await.map_err(db_err)
    }

    /// Inserts records with new inputs and merges the others into the stored ones; answers
    /// how many were inserted and how many updated. The dataset's schema, profile, digest and
    /// last update follow in the same transaction.
    pub async fn upsert_evaluation_dataset_records(
        &self,
        dataset_id: &str,
        records: &[RecordInput],
    ) -> Result<(i64, i64)> {
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let dataset = self
            .lock_dataset(&mut tx, dataset_id)
            .await?
            .map(|row| dataset_from_row(&row))
            .ok_or_else(|| not_found(dataset_id))?;
        let hashes: Vec<String> = records
            .iter()
            .map(|r| rules::inputs_hash(&r.inputs))
            .collect();
        let mut stored: HashMap<String, DatasetRecord> = HashMap::new();
        for chunk in hashes.chunks(IN_LIST_CHUNK) {
            let mut sql = self.sql(&format!(
                "SELECT {RECORD_COLUMNS} FROM evaluation_dataset_records WHERE dataset_id = "
            ));
            sql.bind_str(dataset_id).push(" AND input_hash IN ");
            sql.bind_list(chunk.iter().map(|h| Bind::Str(h.clone())));
            for row in sql.query().fetch_all(&mut *tx).await.map_err(db_err)? {
                stored.insert(get_str(&row, "input_hash"), record_from_row(&row));
            }
        }
        // Records of this batch by hash, in the order first seen, and whether each is new.
        let mut batch: Vec<(String, DatasetRecord, bool)> = Vec::new();
        let (mut inserted, mut updated) = (0, 0);
        for (record, hash) in records.iter().zip(&hashes) {
            if let Some((_, existing, _)) = batch.iter_mut().find(|(h, _, _)| h == hash) {
                existing.merge(record, now);
                updated += 1;
            } else if let Some(mut existing) = stored.remove(hash) {
                existing.merge(record, now);
                batch.push((hash.clone(), existing, false));
                updated += 1;
            } else {
                batch.push((
                    hash.clone(),
                    DatasetRecord::new(dataset_id, record, now),
                    true,
                ));
                inserted += 1;
            }
        }
        for (hash, record, is_new) in &batch {
            self.write_record(&mut tx, hash, record, *is_new).await?;
        }
        let mut count =
            self.sql("SELECT COUNT(*) AS n FROM evaluation_dataset_records WHERE dataset_id = ");
        count.bind_str(dataset_id);
        let total = get_i64(
            &count.query().fetch_one(&mut *tx).await.map_err(db_err)?,
            "n",
        );
        let mut sql = self.sql("UPDATE evaluation_datasets SET last_update_time = ");
        sql.bind_i64(now)
            .push(", last_updated_by = ")
            .bind(Bind::OptStr(rules::upserted_by(records)))
            .push(", digest = ")
            .bind_str(rules::dataset_digest(&dataset.name, now));
        if let Some(schema) = rules::updated_schema(dataset.schema.as_deref(), records) {
            sql.push(", schema_json = ").bind_str(schema);
        }
        if let Some(profile) = rules::profile(total) {
            sql.push(", profile_json = ").bind_str(profile);
        }
        sql.push(" WHERE dataset_id = ").bind_str(dataset_id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok((inserted, updated))
    }

    async fn write_record(
        &self,
        tx: &mut Tx<'_>,
        hash: &str,
        record: &DatasetRecord,
        is_new: bool,
    ) -> Result<()> {
        let outputs = record.outputs.as_ref().map(json_text);
        let expectations = record
            .expectations
            .clone()
            .map(|e| json_text(&Value::Object(e)));
        let tags = json_text(&Value::Object(record.tags.clone()));
        let mut sql;
        if is_new {
            sql = self.sql(&format!(
                "INSERT INTO evaluation_dataset_records ({RECORD_COLUMNS}) VALUES "
            ));
            sql.bind_list([
                Bind::Str(record.dataset_record_id.clone()),
                Bind::Str(record.dataset_id.clone()),
                Bind::Str(hash.to_string()),
                Bind::Str(json_text(&Value::Object(record.inputs.clone()))),
                Bind::OptStr(outputs),
                Bind::OptStr(expectations),
                Bind::Str(tags),
                Bind::OptStr(record.source.as_ref().map(json_text)),
                Bind::OptStr(record.source_id.clone()),
                Bind::OptStr(record.source_type.clone()),
                Bind::I64(record.created_time),
                Bind::I64(record.last_update_time),
                Bind::OptStr(record.created_by.clone()),
                Bind::OptStr(record.last_updated_by.clone()),
            ]);
        } else {
            sql = self.sql("UPDATE evaluation_dataset_records SET outputs = ");
            sql.bind(Bind::OptStr(outputs))
                .push(", expectations = ")
                .bind(Bind::OptStr(expectations))
                .push(", tags = ")
                .bind_str(tags)
                .push(", last_update_time = ")
                .bind_i64(record.last_update_time)
                .push(", last_updated_by = ")
                .bind(Bind::OptStr(record.last_updated_by.clone()))
                .push(" WHERE dataset_record_id = ")
                .bind_str(&record.dataset_record_id);
        }
        sql.query().execute(&mut **tx).await.map_err(db_err)?;
        Ok(())
    }

    /// One page of a dataset's records in (created_time, id) order, and the cursor of the next
    /// page; a dataset that is not there has none, as in MLflow.
    pub async fn evaluation_dataset_records(
        &self,
        dataset_id: &str,
        max_results: i64,
        cursor: &RecordCursor,
    ) -> Result<(Vec<DatasetRecord>, Option<String>)> {
        let mut sql = self.sql(&format!(
            "SELECT {RECORD_COLUMNS} FROM evaluation_dataset_records WHERE dataset_id = "
        ));
        sql.bind_str(dataset_id);
        if let RecordCursor::After {
            created_time,
            record_id,
        } = cursor
        {
            sql.push(" AND (created_time > ")
                .bind_i64(*created_time)
                .push(" OR (created_time = ")
                .bind_i64(*created_time)
                .push(" AND dataset_record_id > ")
                .bind_str(record_id)
                .push("))");
        }
        sql.push(" ORDER BY created_time, dataset_record_id LIMIT ")
            .bind_i64(max_results + 1)
            .push(" OFFSET ")
            .bind_i64(match cursor {
                RecordCursor::Offset(offset) => *offset,
                _ => 0,
            });
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let mut records: Vec<DatasetRecord> = rows.iter().map(record_from_row).collect();
        let next = if records.len() as i64 > max_results {
            records.truncate(max_results as usize);
            records
                .last()
                .map(|last| rules::records_page_token(last.created_time, &last.dataset_record_id))
        } else {
            None
        };
        Ok((records, next))
    }

    /// Removes records by id; answers how many were there. The profile counts the rest.
    pub async fn delete_evaluation_dataset_records(
        &self,
        dataset_id: &str,
        record_ids: &[String],
    ) -> Result<i64> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut deleted = 0;
        for chunk in record_ids.chunks(IN_LIST_CHUNK) {
            let mut sql = self.sql("DELETE FROM evaluation_dataset_records WHERE dataset_id = ");
            sql.bind_str(dataset_id).push(" AND dataset_record_id IN ");
            sql.bind_list(chunk.iter().map(|id| Bind::Str(id.clone())));
            deleted += sql
                .query()
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected() as i64;
        }
        if deleted > 0 {
            let mut count = self
                .sql("SELECT COUNT(*) AS n FROM evaluation_dataset_records WHERE dataset_id = ");
            count.bind_str(dataset_id);
            let total = get_i64(
                &count.query().fetch_one(&mut *tx).await.map_err(db_err)?,
                "n",
            );
            let mut sql = self.sql("UPDATE evaluation_datasets SET profile_json = ");
            sql.bind(Bind::OptStr(rules::profile(total)))
                .push(" WHERE dataset_id = ")
                .bind_str(dataset_id);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }

    /// The experiments a dataset belongs to, in the order it was added to them; none for a
    /// dataset that is not there, as in MLflow.
    pub async fn evaluation_dataset_experiment_ids(&self, dataset_id: &str) -> Result<Vec<String>> {
        let mut sql = self
            .sql("SELECT experiment_id FROM evaluation_dataset_experiments WHERE dataset_id = ");
        sql.bind_str(dataset_id)
            .push(" ORDER BY created_time, experiment_id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|row| get_i64(row, "experiment_id").to_string())
            .collect())
    }

    /// Adds the dataset to experiments (which must exist); adding it again changes nothing.
    pub async fn add_evaluation_dataset_to_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvaluationDataset> {
        let now = now_ms();
        let mut tx = self.begin_on_linked_dataset(dataset_id).await?;
        let experiments = existing_experiments(&mut tx, self.dialect, experiment_ids).await?;
        link_experiments(&mut tx, self.dialect, dataset_id, &experiments, now).await?;
        self.touch_dataset(&mut tx, dataset_id, now).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_evaluation_dataset(dataset_id).await
    }

    /// Removes the dataset from experiments; experiments it is not in are passed over.
    pub async fn remove_evaluation_dataset_from_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvaluationDataset> {
        let now = now_ms();
        let mut tx = self.begin_on_linked_dataset(dataset_id).await?;
        let numbers = numeric_ids(experiment_ids);
        if !numbers.is_empty() {
            let mut sql =
                self.sql("DELETE FROM evaluation_dataset_experiments WHERE dataset_id = ");
            sql.bind_str(dataset_id).push(" AND experiment_id IN ");
            sql.bind_list(numbers);
            let removed = sql.query().execute(&mut *tx).await.map_err(db_err)?;
            if removed.rows_affected() > 0 {
                self.touch_dataset(&mut tx, dataset_id, now).await?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        self.get_evaluation_dataset(dataset_id).await
    }

    /// A transaction holding the dataset's row, for changing its experiments.
    async fn begin_on_linked_dataset(&self, dataset_id: &str) -> Result<Tx<'_>> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_dataset(&mut tx, dataset_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Dataset '{dataset_id}' not found")))?;
        Ok(tx)
    }

    async fn touch_dataset(&self, tx: &mut Tx<'_>, dataset_id: &str, now: i64) -> Result<()> {
        let mut sql = self.sql("UPDATE evaluation_datasets SET last_update_time = ");
        sql.bind_i64(now)
            .push(" WHERE dataset_id = ")
            .bind_str(dataset_id);
        sql.query().execute(&mut **tx).await.map_err(db_err)?;
        Ok(())
    }
}

/// The ids that are numbers, as experiment ids are; the others name no experiment.
fn numeric_ids(ids: &[String]) -> Vec<Bind> {
    ids.iter()
        .filter_map(|id| id.trim().parse().ok().map(Bind::I64))
        .collect()
}
