-- Budget policies of the AI gateway, what its calls cost, and shared rate-limit windows. Spend is kept per minute, per
-- endpoint and per caller ('' when no one signed in): every budget window is whole minutes,
-- so a window's spend is the sum of its minutes, read the same by every replica, and a
-- policy made mid-window counts the calls made before it, as MLflow's does.

CREATE TABLE gateway_budget_policies (
    budget_policy_id TEXT PRIMARY KEY,
    budget_unit TEXT NOT NULL,
    budget_amount DOUBLE PRECISION NOT NULL,
    duration_unit TEXT NOT NULL,
    duration_value BIGINT NOT NULL,
    target_scope TEXT NOT NULL,
    target_value TEXT,
    budget_action TEXT NOT NULL,
    workspace TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT
);

CREATE TABLE gateway_spend (
    minute_ms BIGINT NOT NULL,
    endpoint_id TEXT NOT NULL,
    username TEXT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (minute_ms, endpoint_id, username)
);

-- One row per policy window whose alert was queued: the alert goes out once, whichever
-- replica saw the spend cross the limit.
CREATE TABLE gateway_budget_alerts (
    budget_policy_id TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    alerted_at BIGINT NOT NULL,
    PRIMARY KEY (budget_policy_id, window_start_ms)
);

-- Rate-limit windows of `mlox gateway` replicas that share limits (`--limits-store`): calls
-- counted per endpoint and fixed window, so every replica counts against the same limit.
CREATE TABLE gateway_rate_windows (
    endpoint TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    PRIMARY KEY (endpoint, window_start_ms)
);
