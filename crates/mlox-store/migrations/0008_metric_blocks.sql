-- Sealed stretches of metric histories: up to 1024 points of one (run, key) packed into one
-- value (see metric_history.rs), moved out of `metrics` once a series holds that many there.
-- The last point of each block lets a keyset page skip the blocks that end before it. A
-- rowid table, not WITHOUT ROWID: its rows are ten kilobytes or so, far over a page.
CREATE TABLE metric_blocks (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    first_timestamp BIGINT NOT NULL,
    last_timestamp BIGINT NOT NULL,
    last_step BIGINT NOT NULL,
    last_value DOUBLE PRECISION NOT NULL,
    last_is_nan INTEGER NOT NULL,
    points BIGINT NOT NULL,
    data {{BLOB}} NOT NULL,
    PRIMARY KEY (run_uuid, key, seq)
);
