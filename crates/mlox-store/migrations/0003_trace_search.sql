-- Trace fields that searches filter and order on, kept beside the stored trace info so they can
-- be compared in SQL: the execution time and client request id as columns, the request
-- metadata as rows, and the runs a trace was linked to after it was recorded.
ALTER TABLE traces ADD COLUMN execution_time_ms BIGINT;
ALTER TABLE traces ADD COLUMN client_request_id TEXT;

CREATE TABLE trace_metadata (
    trace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
) {{WITHOUT_ROWID}};
CREATE INDEX trace_metadata_by_key ON trace_metadata (key);
CREATE INDEX trace_tags_by_key ON trace_tags (key);

CREATE TABLE trace_run_links (
    trace_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (trace_id, run_id)
) {{WITHOUT_ROWID}};
CREATE INDEX trace_run_links_by_run ON trace_run_links (run_id);

-- What assessment filters (`feedback.<name>`, `expectation.<name>`, `issue.id`) compare, copied
-- out of each assessment's document: its kind and name, whether it is valid (not overridden),
-- its value as JSON text, and the value as a number when it is one.
ALTER TABLE assessments ADD COLUMN kind TEXT;
ALTER TABLE assessments ADD COLUMN name TEXT;
ALTER TABLE assessments ADD COLUMN is_valid INTEGER;
ALTER TABLE assessments ADD COLUMN value_json TEXT;
ALTER TABLE assessments ADD COLUMN numeric_value DOUBLE PRECISION;
