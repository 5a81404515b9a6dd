-- Model registry and webhook outbox. Portable across SQLite and PostgreSQL like 0001.

CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description TEXT
);

CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
) {{WITHOUT_ROWID}};

-- Deleted versions stay as rows (stage 'Deleted_Internal') so their numbers are never reused.
CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description TEXT,
    user_id TEXT,
    current_stage TEXT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    run_link TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    storage_location TEXT,
    model_id TEXT,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_model_id ON model_versions (model_id);
CREATE INDEX model_versions_by_run ON model_versions (run_id);

CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
) {{WITHOUT_ROWID}};

CREATE TABLE registered_model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
) {{WITHOUT_ROWID}};

-- `events` holds the subscribed "entity.action" names, comma-separated.
CREATE TABLE webhooks (
    webhook_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT,
    status TEXT NOT NULL,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL
);
CREATE INDEX webhooks_by_creation ON webhooks (creation_timestamp);

-- One row per (registry change, subscribed webhook), written in the same transaction as the
-- change itself, so an event is never lost between commit and delivery. Dispatchers on any
-- replica claim due rows by stamping `claim_owner` with a lease; an expired lease makes the
-- row claimable again, and every later write is fenced on the claim.
CREATE TABLE webhook_outbox (
    delivery_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    claim_owner TEXT,
    lease_expires_ms BIGINT,
    last_error TEXT,
    finished_ms BIGINT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_ms);
CREATE INDEX webhook_outbox_by_claim ON webhook_outbox (claim_owner);
CREATE INDEX webhook_outbox_by_webhook ON webhook_outbox (webhook_id, state);
