-- Spans that arrive over OpenTelemetry (OTLP), kept in the database as MLflow keeps them: one
-- row per span with the fields a trace is assembled and ordered by, and the span's document
-- (MLflow's span dictionary) as JSON text.
CREATE TABLE spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    experiment_id BIGINT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    span_type TEXT,
    status TEXT NOT NULL,
    start_time_unix_nano BIGINT NOT NULL,
    end_time_unix_nano BIGINT,
    content TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) {{WITHOUT_ROWID}};
CREATE INDEX spans_by_experiment ON spans (experiment_id);

-- When each assessment was logged, in microseconds that only grow, so assessments logged within
-- one millisecond still list in the order they were logged (their create time has ms only).
ALTER TABLE assessments ADD COLUMN created_us BIGINT;

-- Issues found in an experiment's traces (MLflow 3's issues API). Root causes and categories
-- are JSON lists; traces point at an issue through issue assessments named by its id.
CREATE TABLE issues (
    issue_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT,
    root_causes TEXT,
    source_run_id TEXT,
    categories TEXT,
    created_by TEXT,
    created_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL
);
CREATE INDEX issues_by_experiment ON issues (experiment_id, created_timestamp);

-- Scorers registered with an experiment: one row per name, one per version of it.
CREATE TABLE scorers (
    scorer_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    scorer_name TEXT NOT NULL,
    UNIQUE (experiment_id, scorer_name)
);
CREATE TABLE scorer_versions (
    scorer_id TEXT NOT NULL,
    scorer_version BIGINT NOT NULL,
    serialized_scorer TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    PRIMARY KEY (scorer_id, scorer_version)
) {{WITHOUT_ROWID}};
