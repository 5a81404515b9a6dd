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
