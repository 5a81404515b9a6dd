-- The AI gateway kept in the tracking database (MLflow 3's /gateway API). Secrets are stored
-- sealed by the caller (sealed_value) beside their masked form; JSON text holds the masked
-- values, the auth config and an endpoint's fallback config, as MLflow keeps them.

CREATE TABLE gateway_secrets (
    secret_id TEXT PRIMARY KEY,
    secret_name TEXT NOT NULL UNIQUE,
    sealed_value TEXT NOT NULL,
    masked_values TEXT NOT NULL,
    provider TEXT,
    auth_config TEXT,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT
);

CREATE TABLE gateway_model_definitions (
    model_definition_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_id TEXT,
    provider TEXT NOT NULL,
    model_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT
);
CREATE INDEX gateway_model_definitions_by_secret ON gateway_model_definitions (secret_id);

CREATE TABLE gateway_endpoints (
    endpoint_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    routing_strategy TEXT,
    fallback_config TEXT,
    experiment_id BIGINT,
    usage_tracking INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT
);

CREATE TABLE gateway_endpoint_models (
    mapping_id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    model_definition_id TEXT NOT NULL,
    linkage_type TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    fallback_order BIGINT,
    -- The mapping's place in the endpoint's list, as the models were given.
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT,
    UNIQUE (endpoint_id, model_definition_id, linkage_type)
);
CREATE INDEX gateway_endpoint_models_by_definition ON gateway_endpoint_models (model_definition_id);

CREATE TABLE gateway_endpoint_bindings (
    endpoint_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    display_name TEXT,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT,
    PRIMARY KEY (endpoint_id, resource_type, resource_id)
) {{WITHOUT_ROWID}};
CREATE INDEX gateway_endpoint_bindings_by_resource ON gateway_endpoint_bindings (resource_type, resource_id);

CREATE TABLE gateway_endpoint_tags (
    endpoint_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, key)
) {{WITHOUT_ROWID}};

-- How a registered scorer runs on incoming traces: one config per scorer.
CREATE TABLE online_scoring_configs (
    online_scoring_config_id TEXT PRIMARY KEY,
    scorer_id TEXT NOT NULL UNIQUE,
    experiment_id BIGINT NOT NULL,
    sample_rate DOUBLE PRECISION NOT NULL,
    filter_string TEXT
);
