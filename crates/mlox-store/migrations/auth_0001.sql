-- Users, roles, grants and personal access tokens (MLflow basic-auth's data), versioned in
-- mlox_auth_schema apart from the tracking schema. Children are deleted by the store inside
-- one transaction; no foreign-key cascade is relied on (SQLite enforces them only on request).
CREATE TABLE IF NOT EXISTS auth_users (
    id {{ID}},
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_roles (
    id {{ID}},
    workspace TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    UNIQUE (workspace, name)
);
CREATE TABLE IF NOT EXISTS auth_role_permissions (
    id {{ID}},
    role_id BIGINT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_pattern TEXT NOT NULL,
    permission TEXT NOT NULL,
    UNIQUE (role_id, resource_type, resource_pattern)
);
CREATE INDEX IF NOT EXISTS auth_role_permissions_resource ON auth_role_permissions (resource_type, resource_pattern);
CREATE TABLE IF NOT EXISTS auth_user_roles (
    id {{ID}},
    user_id BIGINT NOT NULL,
    role_id BIGINT NOT NULL,
    UNIQUE (user_id, role_id)
);
CREATE INDEX IF NOT EXISTS auth_user_roles_role ON auth_user_roles (role_id);
CREATE TABLE IF NOT EXISTS auth_tokens (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX IF NOT EXISTS auth_tokens_user ON auth_tokens (user_id);
