-- MLflow 3 evaluation datasets (mlflow.genai.datasets): the dataset with its schema and profile
-- (JSON text, as MLflow keeps them), its tags, its records and the experiments it belongs to.

CREATE TABLE evaluation_datasets (
    dataset_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    schema_json TEXT,
    profile_json TEXT,
    digest TEXT NOT NULL,
    created_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT
);
CREATE INDEX evaluation_datasets_by_created_time ON evaluation_datasets (created_time);
CREATE INDEX evaluation_datasets_by_name ON evaluation_datasets (name);

CREATE TABLE evaluation_dataset_tags (
    dataset_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (dataset_id, key)
) {{WITHOUT_ROWID}};

-- One row per distinct inputs of a dataset (input_hash: SHA-256 of the inputs as MLflow writes
-- them); the other columns are JSON text, outputs NULL when a record has none.
CREATE TABLE evaluation_dataset_records (
    dataset_record_id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT,
    expectations TEXT,
    tags TEXT NOT NULL,
    source TEXT,
    source_id TEXT,
    source_type TEXT,
    created_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT,
    UNIQUE (dataset_id, input_hash)
);
-- Records are listed in (created_time, dataset_record_id) order, the cursor of their pages.
CREATE INDEX evaluation_dataset_records_in_order
    ON evaluation_dataset_records (dataset_id, created_time, dataset_record_id);

CREATE TABLE evaluation_dataset_experiments (
    dataset_id TEXT NOT NULL,
    experiment_id BIGINT NOT NULL,
    created_time BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, experiment_id)
) {{WITHOUT_ROWID}};
CREATE INDEX evaluation_dataset_experiments_by_experiment
    ON evaluation_dataset_experiments (experiment_id, dataset_id);
