//! Users, roles, grants and personal access tokens in storage. They live either in the
//! tracking database (the default) or in a database of their own (`database_uri` of the auth
//! configuration, as MLflow's basic-auth app keeps `basic_auth.db`), so the tables carry their
//! own schema version, `mlox_auth_schema`, apart from the tracking schema: turning auth on
//! never asks for a tracking-schema upgrade.

use crate::db::{Dialect, Sql, SqlStore, db_err, get_i64, get_opt_i64, get_opt_str, get_str};
use mlox_core::auth::{
    Grant, Role, RoleAssignment, RolePermission, TokenInfo, User, personal_role_name,
};
use mlox_core::{Error, Result};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

const AUTH_MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/auth_0001.sql"))];

/// A user with what signing in checks.
#[derive(Clone, Debug)]
pub struct StoredUser {
    pub user: User,
    pub password_hash: String,
}

/// Where users and grants are kept.
#[derive(Clone, Debug)]
pub struct AuthStore {
    read: AnyPool,
    write: AnyPool,
    dialect: Dialect,
}

impl AuthStore {
    /// The auth tables inside the tracking database.
    pub async fn in_tracking_store(store: &SqlStore) -> Result<Self> {
        let auth = AuthStore {
            read: store.read.clone(),
            write: store.write.clone(),
            dialect: store.dialect,
        };
        auth.migrate().await?;
        Ok(auth)
    }

    /// The auth tables in a database of their own (`sqlite:///…` or `postgresql://…`).
    pub async fn open(uri: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = crate::db::to_sqlx_url(uri)?;
        let options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if dialect == Dialect::Sqlite {
                            for pragma in
                                ["PRAGMA journal_mode = WAL", "PRAGMA busy_timeout = 10000"]
                            {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let cannot_open = |e: sqlx::Error| {
            Error::invalid(format!(
                "cannot open the auth database '{}': {e}",
                crate::db::redact_uri(uri)
            ))
        };
        let write_max = if dialect == Dialect::Sqlite { 1 } else { 4 };
        let write = options(write_max)
            .connect(&url)
            .await
            .map_err(cannot_open)?;
        let read = if url.contains(":memory:") {
            write.clone()
        } else {
            options(4).connect(&url).await.map_err(cannot_open)?
        };
        let auth = AuthStore {
            read,
            write,
            dialect,
        };
        auth.migrate().await?;
        Ok(auth)
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_lock(8137450222)")
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        let result = self.migrate_on(&mut conn).await;
        if self.dialect == Dialect::Postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(8137450222)")
                .execute(&mut *conn)
                .await;
        }
        result
    }

    async fn migrate_on(&self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS mlox_auth_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM mlox_auth_schema")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?
            .get::<i64, _>(0);
        let newest = AUTH_MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > newest {
            return Err(Error::invalid_state(format!(
                "The auth tables are at version {current}, newer than this mlox understands \
                 (up to {newest}): run the newer mlox that wrote them."
            )));
        }
        let id_column = match self.dialect {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        for (version, sql) in AUTH_MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            let sql = sql.replace("{{ID}}", id_column);
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_err)?;
            for statement in crate::db::split_statements(&sql) {
                sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        Error::internal(format!("auth migration {version} failed: {e}"))
                    })?;
            }
            sqlx::query("INSERT INTO mlox_auth_schema (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
        }
        Ok(())
    }

    fn sql(&self, text: &str) -> Sql {
        Sql::for_dialect(self.dialect, text)
    }

    /// Runs an `INSERT … RETURNING id`; a unique-key conflict becomes `conflict()`'s message.
    async fn insert_returning_id(
        &self,
        sql: Sql,
        conflict: impl FnOnce() -> String,
    ) -> Result<i64> {
        let row = sql.query().fetch_one(&self.write).await.map_err(|e| {
            let err = db_err(e);
            if err.code == mlox_core::Code::ResourceAlreadyExists {
                Error::already_exists(conflict())
            } else {
                err
            }
        })?;
        Ok(row.get::<i64, _>(0))
    }

    // ---- users ----

    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User> {
        let mut sql = self
            .sql("INSERT INTO auth_users (username, password_hash, is_admin, created_at) VALUES (");
        sql.bind_str(username)
            .push(", ")
            .bind_str(password_hash)
            .push(", ")
            .bind_i64(is_admin as i64)
            .push(", ")
            .bind_i64(crate::now_ms())
            .push(") RETURNING id");
        let id = self
            .insert_returning_id(sql, || {
                format!("User (username={username}) already exists.")
            })
            .await?;
        Ok(User {
            id,
            username: username.to_string(),
            is_admin,
        })
    }

    pub async fn user(&self, username: &str) -> Result<Option<StoredUser>> {
        let mut sql = self
            .sql("SELECT id, username, password_hash, is_admin FROM auth_users WHERE username = ");
        sql.bind_str(username);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(stored_user))
    }

    /// The user, or MLflow's 404 naming it.
    pub async fn existing_user(&self, username: &str) -> Result<StoredUser> {
        self.user(username)
            .await?
            .ok_or_else(|| Error::not_found(format!("User with username={username} not found")))
    }

    pub async fn user_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM auth_users")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.get::<i64, _>(0))
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT id, username, password_hash, is_admin FROM auth_users ORDER BY username",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().map(|r| stored_user(r).user).collect())
    }

    pub async fn set_password_hash(&self, username: &str, password_hash: &str) -> Result<()> {
        let mut sql = self.sql("UPDATE auth_users SET password_hash = ");
        sql.bind_str(password_hash)
            .push(" WHERE username = ")
            .bind_str(username);
        self.expect_rows(sql, || format!("User with username={username} not found"))
            .await
    }

    pub async fn set_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let mut sql = self.sql("UPDATE auth_users SET is_admin = ");
        sql.bind_i64(is_admin as i64)
            .push(" WHERE username = ")
            .bind_str(username);
        self.expect_rows(sql, || format!("User with username={username} not found"))
            .await
    }

    /// Runs a write that must touch a row; touching none is `missing()`'s 404.
    async fn expect_rows(&self, sql: Sql, missing: impl FnOnce() -> String) -> Result<()> {
        let done = sql.query().execute(&self.write).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found(missing()));
        }
        Ok(())
    }

    /// Deletes the user with their tokens, role assignments and personal role.
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        let user = self.existing_user(username).await?.user;
        let personal = personal_role_name(user.id);
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut statements = Vec::new();
        let mut sql = self.sql("DELETE FROM auth_tokens WHERE user_id = ");
        sql.bind_i64(user.id);
        statements.push(sql);
        let mut sql = self.sql("DELETE FROM auth_user_roles WHERE user_id = ");
        sql.bind_i64(user.id);
        statements.push(sql);
        let mut sql = self.sql(
            "DELETE FROM auth_role_permissions WHERE role_id IN (SELECT id FROM auth_roles WHERE name = ",
        );
        sql.bind_str(&personal).push(")");
        statements.push(sql);
        let mut sql = self.sql("DELETE FROM auth_roles WHERE name = ");
        sql.bind_str(&personal);
        statements.push(sql);
        let mut sql = self.sql("DELETE FROM auth_users WHERE id = ");
        sql.bind_i64(user.id);
        statements.push(sql);
        for sql in statements {
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    // ---- roles ----

    pub async fn create_role(
        &self,
        workspace: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Role> {
        let mut sql = self.sql("INSERT INTO auth_roles (workspace, name, description) VALUES (");
        sql.bind_str(workspace)
            .push(", ")
            .bind_str(name)
            .push(", ")
            .bind(crate::db::Bind::OptStr(description.map(str::to_string)))
            .push(") RETURNING id");
        let id = self
            .insert_returning_id(sql, || {
                format!("Role '{name}' already exists in workspace '{workspace}'.")
            })
            .await?;
        Ok(Role {
            id,
            name: name.to_string(),
            workspace: workspace.to_string(),
            description: description.map(str::to_string),
            permissions: Vec::new(),
        })
    }

    pub async fn role(&self, role_id: i64) -> Result<Option<Role>> {
        let mut sql =
            self.sql("SELECT id, workspace, name, description FROM auth_roles WHERE id = ");
        sql.bind_i64(role_id);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(self.with_permissions(rows).await?.pop())
    }

    pub async fn existing_role(&self, role_id: i64) -> Result<Role> {
        self.role(role_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Role with id={role_id} not found")))
    }

    /// Roles of one workspace, or of every workspace; personal roles are not listed.
    pub async fn list_roles(&self, workspace: Option<&str>) -> Result<Vec<Role>> {
        let mut sql = self.sql(
            "SELECT id, workspace, name, description FROM auth_roles WHERE name NOT LIKE '\\_\\_user\\_%' ESCAPE '\\'",
        );
        if let Some(workspace) = workspace {
            sql.push(" AND workspace = ").bind_str(workspace);
        }
        sql.push(" ORDER BY id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        self.with_permissions(rows).await
    }

    pub async fn update_role(
        &self,
        role_id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role> {
        let role = self.existing_role(role_id).await?;
        let mut sql = self.sql("UPDATE auth_roles SET name = ");
        sql.bind_str(name.unwrap_or(&role.name))
            .push(", description = ")
            .bind(crate::db::Bind::OptStr(
                description.map(str::to_string).or(role.description),
            ))
            .push(" WHERE id = ")
            .bind_i64(role_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.existing_role(role_id).await
    }

    pub async fn delete_role(&self, role_id: i64) -> Result<()> {
        self.existing_role(role_id).await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        for table in ["auth_role_permissions", "auth_user_roles"] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE role_id = "));
            sql.bind_i64(role_id);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        let mut sql = self.sql("DELETE FROM auth_roles WHERE id = ");
        sql.bind_i64(role_id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn with_permissions(&self, rows: Vec<AnyRow>) -> Result<Vec<Role>> {
        let mut roles: Vec<Role> = rows
            .iter()
            .map(|r| Role {
                id: get_i64(r, "id"),
                name: get_str(r, "name"),
                workspace: get_str(r, "workspace"),
                description: get_opt_str(r, "description"),
                permissions: Vec::new(),
            })
            .collect();
        if roles.is_empty() {
            return Ok(roles);
        }
        let ids: Vec<i64> = roles.iter().map(|r| r.id).collect();
        let mut sql = self.sql(
            "SELECT id, role_id, resource_type, resource_pattern, permission FROM auth_role_permissions WHERE role_id IN ",
        );
        sql.bind_list(ids.iter().map(|id| crate::db::Bind::I64(*id)));
        sql.push(" ORDER BY id");
        for row in sql.query().fetch_all(&self.read).await.map_err(db_err)? {
            let permission = role_permission(&row);
            if let Some(role) = roles.iter_mut().find(|r| r.id == permission.role_id) {
                role.permissions.push(permission);
            }
        }
        Ok(roles)
    }

    pub async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        pattern: &str,
        permission: &str,
    ) -> Result<RolePermission> {
        self.existing_role(role_id).await?;
        let mut sql = self.sql(
            "INSERT INTO auth_role_permissions (role_id, resource_type, resource_pattern, permission) VALUES (",
        );
        sql.bind_i64(role_id)
            .push(", ")
            .bind_str(resource_type)
            .push(", ")
            .bind_str(pattern)
            .push(", ")
            .bind_str(permission)
            .push(") RETURNING id");
        let id = self
            .insert_returning_id(sql, || {
                format!("Role {role_id} already has a permission on {resource_type} '{pattern}'.")
            })
            .await?;
        Ok(RolePermission {
            id,
            role_id,
            resource_type: resource_type.to_string(),
            resource_pattern: pattern.to_string(),
            permission: permission.to_string(),
        })
    }

    pub async fn role_permission(&self, id: i64) -> Result<RolePermission> {
        let mut sql = self.sql(
            "SELECT id, role_id, resource_type, resource_pattern, permission FROM auth_role_permissions WHERE id = ",
        );
        sql.bind_i64(id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref()
            .map(role_permission)
            .ok_or_else(|| Error::not_found(format!("Role permission with id={id} not found")))
    }

    pub async fn update_role_permission(
        &self,
        id: i64,
        permission: &str,
    ) -> Result<RolePermission> {
        self.role_permission(id).await?;
        let mut sql = self.sql("UPDATE auth_role_permissions SET permission = ");
        sql.bind_str(permission).push(" WHERE id = ").bind_i64(id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.role_permission(id).await
    }

    pub async fn remove_role_permission(&self, id: i64) -> Result<()> {
        self.role_permission(id).await?;
        let mut sql = self.sql("DELETE FROM auth_role_permissions WHERE id = ");
        sql.bind_i64(id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn assign_role(&self, user_id: i64, role_id: i64) -> Result<RoleAssignment> {
        let mut sql = self.sql("INSERT INTO auth_user_roles (user_id, role_id) VALUES (");
        sql.bind_i64(user_id)
            .push(", ")
            .bind_i64(role_id)
            .push(") RETURNING id");
        let id = self
            .insert_returning_id(sql, || {
                format!("User {user_id} already has role {role_id}.")
            })
            .await?;
        Ok(RoleAssignment {
            id,
            user_id,
            role_id,
        })
    }

    pub async fn unassign_role(&self, user_id: i64, role_id: i64) -> Result<()> {
        let mut sql = self.sql("DELETE FROM auth_user_roles WHERE user_id = ");
        sql.bind_i64(user_id)
            .push(" AND role_id = ")
            .bind_i64(role_id);
        self.expect_rows(sql, || {
            format!("User {user_id} does not have role {role_id}.")
        })
        .await
    }

    /// The user's roles, personal role included, with their grants.
    pub async fn user_roles(&self, user_id: i64) -> Result<Vec<Role>> {
        let mut sql = self.sql(
            "SELECT r.id, r.workspace, r.name, r.description FROM auth_roles r \
             JOIN auth_user_roles a ON a.role_id = r.id WHERE a.user_id = ",
        );
        sql.bind_i64(user_id).push(" ORDER BY r.id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        self.with_permissions(rows).await
    }

    pub async fn role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        let mut sql = self.sql("SELECT id, user_id, role_id FROM auth_user_roles WHERE role_id = ");
        sql.bind_i64(role_id).push(" ORDER BY id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| RoleAssignment {
                id: get_i64(r, "id"),
                user_id: get_i64(r, "user_id"),
                role_id: get_i64(r, "role_id"),
            })
            .collect())
    }

    /// Every grant the user holds in `workspace`, through any role.
    pub async fn grants(&self, user_id: i64, workspace: &str) -> Result<Vec<Grant>> {
        Ok(self
            .user_roles(user_id)
            .await?
            .iter()
            .filter(|r| r.workspace == workspace)
            .flat_map(|r| r.grants().collect::<Vec<_>>())
            .collect())
    }

    /// Grants `permission` on one resource to the user directly (through their personal
    /// role, created on first use), replacing a direct grant on the same resource.
    pub async fn grant_direct(
        &self,
        user_id: i64,
        workspace: &str,
        resource_type: &str,
        resource_id: &str,
        permission: &str,
    ) -> Result<()> {
        let name = personal_role_name(user_id);
        let role_id = match self.personal_role(user_id, workspace).await? {
            Some(id) => id,
            None => {
                let role = match self.create_role(workspace, &name, None).await {
                    Ok(role) => role.id,
                    // Another replica made it first.
                    Err(e) if e.code == mlox_core::Code::ResourceAlreadyExists => {
                        self.personal_role(user_id, workspace).await?.ok_or(e)?
                    }
                    Err(e) => return Err(e),
                };
                match self.assign_role(user_id, role).await {
                    Ok(_) => {}
                    Err(e) if e.code == mlox_core::Code::ResourceAlreadyExists => {}
                    Err(e) => return Err(e),
                }
                role
            }
        };
        let mut sql = self.sql(
            "INSERT INTO auth_role_permissions (role_id, resource_type, resource_pattern, permission) VALUES (",
        );
        sql.bind_i64(role_id)
            .push(", ")
            .bind_str(resource_type)
            .push(", ")
            .bind_str(resource_id)
            .push(", ")
            .bind_str(permission)
            .push(
                ") ON CONFLICT (role_id, resource_type, resource_pattern) DO UPDATE SET permission = excluded.permission",
            );
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    /// The direct grant on one resource, if the user has one.
    pub async fn direct_grant(
        &self,
        user_id: i64,
        workspace: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<String>> {
        let Some(role_id) = self.personal_role(user_id, workspace).await? else {
            return Ok(None);
        };
        let mut sql = self.sql("SELECT permission FROM auth_role_permissions WHERE role_id = ");
        sql.bind_i64(role_id)
            .push(" AND resource_type = ")
            .bind_str(resource_type)
            .push(" AND resource_pattern = ")
            .bind_str(resource_id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| get_str(&r, "permission")))
    }

    /// Removes a direct grant; `false` when there was none.
    pub async fn revoke_direct(
        &self,
        user_id: i64,
        workspace: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<bool> {
        let Some(role_id) = self.personal_role(user_id, workspace).await? else {
            return Ok(false);
        };
        let mut sql = self.sql("DELETE FROM auth_role_permissions WHERE role_id = ");
        sql.bind_i64(role_id)
            .push(" AND resource_type = ")
            .bind_str(resource_type)
            .push(" AND resource_pattern = ")
            .bind_str(resource_id);
        let done = sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn personal_role(&self, user_id: i64, workspace: &str) -> Result<Option<i64>> {
        let mut sql = self.sql("SELECT id FROM auth_roles WHERE workspace = ");
        sql.bind_str(workspace)
            .push(" AND name = ")
            .bind_str(personal_role_name(user_id));
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| get_i64(&r, "id")))
    }

    /// Drops every grant naming one resource (a deleted registered model).
    pub async fn delete_resource_grants(
        &self,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<()> {
        let mut sql = self.sql("DELETE FROM auth_role_permissions WHERE resource_type = ");
        sql.bind_str(resource_type)
            .push(" AND resource_pattern = ")
            .bind_str(resource_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    /// Moves every grant naming `old` to `new` (a renamed registered model).
    pub async fn rename_resource_grants(
        &self,
        resource_type: &str,
        old: &str,
        new: &str,
    ) -> Result<()> {
        let mut sql = self.sql("UPDATE auth_role_permissions SET resource_pattern = ");
        sql.bind_str(new)
            .push(" WHERE resource_type = ")
            .bind_str(resource_type)
            .push(" AND resource_pattern = ")
            .bind_str(old);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    // ---- personal access tokens ----

    pub async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<TokenInfo> {
        let info = TokenInfo {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_string(),
            created_at: crate::now_ms(),
            expires_at,
        };
        let mut sql = self.sql(
            "INSERT INTO auth_tokens (id, user_id, name, token_hash, created_at, expires_at) VALUES (",
        );
        sql.bind_str(&info.id)
            .push(", ")
            .bind_i64(user_id)
            .push(", ")
            .bind_str(name)
            .push(", ")
            .bind_str(token_hash)
            .push(", ")
            .bind_i64(info.created_at)
            .push(", ")
            .bind(crate::db::Bind::OptI64(expires_at))
            .push(")");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(info)
    }

    /// The token with this hash and its user, expired or not (the caller judges expiry).
    pub async fn token(&self, token_hash: &str) -> Result<Option<(TokenInfo, User)>> {
        let mut sql = self.sql(
            "SELECT t.id AS token_id, t.name, t.created_at, t.expires_at, \
             u.id, u.username, u.password_hash, u.is_admin \
             FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id WHERE t.token_hash = ",
        );
        sql.bind_str(token_hash);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| (token_info(&r, "token_id"), stored_user(&r).user)))
    }

    pub async fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenInfo>> {
        let mut sql =
            self.sql("SELECT id, name, created_at, expires_at FROM auth_tokens WHERE user_id = ");
        sql.bind_i64(user_id)
            .push(" AND name <> ")
            .bind_str(mlox_core::auth::SESSION_TOKEN_NAME)
            .push(" ORDER BY created_at, id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows.iter().map(|r| token_info(r, "id")).collect())
    }

    /// The owner of a token, to check who may revoke it.
    pub async fn token_owner(&self, token_id: &str) -> Result<Option<i64>> {
        let mut sql = self.sql("SELECT user_id FROM auth_tokens WHERE id = ");
        sql.bind_str(token_id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| get_i64(&r, "user_id")))
    }

    /// Ends the token (a sign-in session) with this digest, if it exists.
    pub async fn delete_token_by_digest(&self, token_hash: &str) -> Result<()> {
        let mut sql = self.sql("DELETE FROM auth_tokens WHERE token_hash = ");
        sql.bind_str(token_hash);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn delete_token(&self, token_id: &str) -> Result<()> {
        let mut sql = self.sql("DELETE FROM auth_tokens WHERE id = ");
        sql.bind_str(token_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }
}

fn stored_user(row: &AnyRow) -> StoredUser {
    StoredUser {
        user: User {
            id: get_i64(row, "id"),
            username: get_str(row, "username"),
            is_admin: get_i64(row, "is_admin") != 0,
        },
        password_hash: get_str(row, "password_hash"),
    }
}

fn role_permission(row: &AnyRow) -> RolePermission {
    RolePermission {
        id: get_i64(row, "id"),
        role_id: get_i64(row, "role_id"),
        resource_type: get_str(row, "resource_type"),
        resource_pattern: get_str(row, "resource_pattern"),
        permission: get_str(row, "permission"),
    }
}

fn token_info(row: &AnyRow, id_column: &str) -> TokenInfo {
    TokenInfo {
        id: get_str(row, id_column),
        name: get_str(row, "name"),
        created_at: get_i64(row, "created_at"),
        expires_at: get_opt_i64(row, "expires_at"),
    }
}

/// Which experiment a resource belongs to, for permission checks: the cheapest read that
/// answers it, without loading the resource itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnedBy {
    Run,
    LoggedModel,
    Trace,
    /// An experiment named by its name.
    ExperimentName,
}

impl SqlStore {
    /// The id of the experiment holding the resource, or `None` when it does not exist.
    pub async fn owning_experiment(&self, kind: OwnedBy, id: &str) -> Result<Option<String>> {
        let text = match kind {
            OwnedBy::Run => "SELECT experiment_id FROM runs WHERE run_uuid = ",
            OwnedBy::LoggedModel => "SELECT experiment_id FROM logged_models WHERE model_id = ",
            OwnedBy::Trace => "SELECT experiment_id FROM traces WHERE trace_id = ",
            OwnedBy::ExperimentName => "SELECT experiment_id FROM experiments WHERE name = ",
        };
        let mut sql = self.sql(text);
        sql.bind_str(id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| get_i64(&r, "experiment_id").to_string()))
    }
}
