//! The auth REST API, as MLflow 3.17's basic-auth app serves it and its `AuthServiceClient`
//! calls it: users, roles and their grants, per-user grants, the per-resource permission
//! endpoints older clients still call, and personal access tokens. Each handler decides who
//! may call it (self, administrator, workspace administrator, or a user with MANAGE on the
//! resource), because those rules depend on the request's content.

use crate::guard::denied;
use crate::{Auth, Caller, hash_blocking};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use mlox_core::auth::{
    Access, DEFAULT_WORKSPACE, Permission, ResourceType, Role, User, validate_grant,
    validate_password, validate_username,
};
use mlox_core::{Code, Error};
use mlox_tracking::error::ApiError;
use mlox_tracking::request::Msg;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Reply = Result<Response, ApiError>;

/// Every auth route, under each API prefix.
pub fn router(auth: Arc<Auth>) -> Router {
    let routes: Router<Arc<Auth>> = Router::new()
        .route("/users/create", post(create_user))
        .route("/users/get", get(get_user))
        .route("/users/current", get(current_user))
        .route("/users/list", get(list_users))
        .route("/users/update-password", patch(update_password))
        .route("/users/update-admin", patch(update_admin))
        .route("/users/delete", delete(delete_user))
        .route("/users/current/permissions", get(current_permissions))
        .route("/users/permissions/list", get(user_permissions))
        .route("/users/permissions/grant", post(grant_permission))
        .route("/users/permissions/revoke", post(revoke_permission))
        .route("/users/permissions/get", get(get_permission))
        .route("/users/roles/list", get(list_user_roles))
        .route("/users/tokens/create", post(create_token))
        .route("/users/tokens/list", get(list_tokens))
        .route("/users/tokens/delete", delete(delete_token))
        .route("/roles/create", post(create_role))
        .route("/roles/get", get(get_role))
        .route("/roles/list", get(list_roles))
        .route("/roles/update", patch(update_role))
        .route("/roles/delete", delete(delete_role))
        .route("/roles/permissions/add", post(add_role_permission))
        .route("/roles/permissions/remove", delete(remove_role_permission))
        .route("/roles/permissions/list", get(list_role_permissions))
        .route("/roles/permissions/update", patch(update_role_permission))
        .route("/roles/assign", post(assign_role))
        .route("/roles/unassign", delete(unassign_role))
        .route("/roles/users/list", get(list_role_users))
        .route(
            "/experiments/permissions/create",
            post(create_experiment_permission),
        )
        .route(
            "/experiments/permissions/get",
            get(get_experiment_permission),
        )
        .route(
            "/experiments/permissions/update",
            patch(update_experiment_permission),
        )
        .route(
            "/experiments/permissions/delete",
            delete(delete_experiment_permission),
        )
        .route(
            "/registered-models/permissions/create",
            post(create_model_permission),
        )
        .route(
            "/registered-models/permissions/get",
            get(get_model_permission),
        )
        .route(
            "/registered-models/permissions/update",
            patch(update_model_permission),
        )
        .route(
            "/registered-models/permissions/delete",
            delete(delete_model_permission),
        );
    let mut app: Router<Arc<Auth>> = Router::new();
    for prefix in mlox_core::wire::API_PREFIXES {
        app = app.nest(prefix, routes.clone());
    }
    app.with_state(auth)
}

fn ok(value: Value) -> Reply {
    Ok(Json(value).into_response())
}

fn empty() -> Reply {
    ok(json!({}))
}

fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    value.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError(Error::invalid(format!(
            "Missing value for required parameter '{field}'."
        )))
    })
}

/// Ids arrive as JSON numbers or, in query strings, as text.
fn id(value: &Option<Value>, field: &str) -> Result<i64, ApiError> {
    let parsed = match value {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        ApiError(Error::invalid(format!(
            "Missing or invalid value for required parameter '{field}': expected an integer."
        )))
    })
}

impl Auth {
    /// Workspaces in which the user holds `workspace`/`*` MANAGE through some role.
    async fn administered_workspaces(&self, user_id: i64) -> Result<Vec<String>, Error> {
        Ok(self
            .users
            .user_roles(user_id)
            .await?
            .iter()
            .filter(|role| {
                role.grants().any(|g| {
                    g.resource_type == ResourceType::Workspace
                        && g.pattern == "*"
                        && g.permission == Permission::Manage
                })
            })
            .map(|role| role.workspace.clone())
            .collect())
    }

    async fn administers(&self, caller: &User, workspace: &str) -> Result<bool, Error> {
        Ok(caller.is_admin
            || self
                .administered_workspaces(caller.id)
                .await?
                .iter()
                .any(|w| w == workspace))
    }
}

// ---- users ----

#[derive(Deserialize)]
struct Credentials {
    username: Option<String>,
    password: Option<String>,
}

async fn create_user(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<Credentials>,
) -> Reply {
    if !caller.is_admin {
        return Ok(denied());
    }
    let (Some(username), Some(password)) = (body.username, body.password) else {
        return Err(ApiError(Error::invalid(
            "Username and password cannot be empty.",
        )));
    };
    validate_username(&username)?;
    validate_password(&password)?;
    if auth.users.user(&username).await?.is_some() {
        return Err(ApiError(Error::already_exists(format!(
            "User (username={username}) already exists."
        ))));
    }
    let hash = hash_blocking(password).await?;
    let user = auth.users.create_user(&username, &hash, false).await?;
    ok(json!({ "user": user }))
}

#[derive(Deserialize)]
struct ByUsername {
    username: Option<String>,
}

async fn get_user(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<ByUsername>,
) -> Reply {
    let username = required(&query.username, "username")?;
    if !caller.is_admin && caller.username != username {
        return Ok(denied());
    }
    let user = auth.users.existing_user(username).await?.user;
    ok(json!({ "user": user }))
}

async fn current_user(
    Extension(Caller(caller)): Extension<Caller>,
    via: Option<Extension<crate::ViaSession>>,
) -> Reply {
    let session = via.is_some_and(|Extension(crate::ViaSession(session))| session);
    ok(json!({ "user": caller, "is_basic_auth": true, "session": session }))
}

async fn list_users(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
) -> Reply {
    let administered = if caller.is_admin {
        None
    } else {
        let workspaces = auth.administered_workspaces(caller.id).await?;
        if workspaces.is_empty() {
            return Ok(denied());
        }
        Some(workspaces)
    };
    let mut users = Vec::new();
    for user in auth.users.list_users().await? {
        let roles: Vec<Role> = auth
            .users
            .user_roles(user.id)
            .await?
            .into_iter()
            .filter(|role| {
                administered
                    .as_ref()
                    .is_none_or(|ws| ws.contains(&role.workspace))
                    || user.id == caller.id
            })
            .collect();
        users.push(json!({
            "id": user.id,
            "username": user.username,
            "is_admin": user.is_admin,
            "roles": roles,
        }));
    }
    ok(json!({ "users": users }))
}

#[derive(Deserialize)]
struct PasswordChange {
    username: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
}

async fn update_password(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<PasswordChange>,
) -> Reply {
    let username = required(&body.username, "username")?;
    let password = required(&body.password, "password")?;
    let own = caller.username == username;
    if !own && !caller.is_admin {
        return Ok(denied());
    }
    let stored = auth.users.existing_user(username).await?;
    if own {
        // A session left open must not be enough to take the account over.
        let current = body
            .current_password
            .clone()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                ApiError(Error::invalid(
                    "Current password is required when changing your own password.",
                ))
            })?;
        let hash = stored.password_hash.clone();
        let matches = tokio::task::spawn_blocking(move || {
            crate::credentials::verify_password(&current, &hash)
        })
        .await
        .unwrap_or(false);
        if !matches {
            return Err(ApiError(Error::invalid("Current password does not match.")));
        }
        if body.current_password.as_deref() == Some(password) {
            return Err(ApiError(Error::invalid(
                "New password must differ from the current password.",
            )));
        }
    }
    validate_password(password)?;
    let hash = hash_blocking(password.to_string()).await?;
    auth.users.set_password_hash(username, &hash).await?;
    auth.user_changed(username);
    empty()
}

#[derive(Deserialize)]
struct AdminChange {
    username: Option<String>,
    is_admin: Option<Value>,
}

async fn update_admin(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<AdminChange>,
) -> Reply {
    if !caller.is_admin {
        return Ok(denied());
    }
    let username = required(&body.username, "username")?;
    let is_admin = match &body.is_admin {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        _ => {
            return Err(ApiError(Error::invalid(
                "Missing or invalid value for required parameter 'is_admin': expected a boolean.",
            )));
        }
    };
    auth.users.set_admin(username, is_admin).await?;
    auth.user_changed(username);
    empty()
}

async fn delete_user(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<ByUsername>,
) -> Reply {
    if !caller.is_admin {
        return Ok(denied());
    }
    let username = required(&body.username, "username")?;
    if username == caller.username {
        return Err(ApiError(Error::new(
            Code::BadRequest,
            "Users cannot delete their own account. Ask another admin to delete this user instead.",
        )));
    }
    auth.users.delete_user(username).await?;
    auth.user_changed(username);
    empty()
}

// ---- what a user holds ----

async fn permission_rows(auth: &Auth, user_id: i64) -> Result<Vec<Value>, Error> {
    Ok(auth
        .users
        .user_roles(user_id)
        .await?
        .iter()
        .flat_map(|role| {
            role.permissions.iter().map(|p| {
                json!({
                    "role_id": role.id,
                    "role_name": role.name,
                    "workspace": role.workspace,
                    "resource_type": p.resource_type,
                    "resource_pattern": p.resource_pattern,
                    "permission": p.permission,
                })
            })
        })
        .collect())
}

async fn current_permissions(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
) -> Reply {
    let rows = permission_rows(&auth, caller.id).await?;
    ok(json!({ "is_admin": caller.is_admin, "permissions": rows }))
}

async fn user_permissions(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<ByUsername>,
) -> Reply {
    let username = required(&query.username, "username")?;
    let target = auth.users.existing_user(username).await?.user;
    let mut rows = permission_rows(&auth, target.id).await?;
    if !caller.is_admin && caller.id != target.id {
        let administered = auth.administered_workspaces(caller.id).await?;
        if administered.is_empty() {
            return Ok(denied());
        }
        rows.retain(|row| {
            row["workspace"]
                .as_str()
                .is_some_and(|w| administered.iter().any(|a| a == w))
        });
    }
    ok(json!({ "is_admin": target.is_admin, "permissions": rows }))
}

#[derive(Deserialize)]
struct ResourceGrant {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<Value>,
    permission: Option<String>,
}

fn resource_id(value: &Option<Value>) -> Result<String, ApiError> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ApiError(Error::invalid(
            "Missing value for required parameter 'resource_id'.",
        ))),
    }
}

/// Whether the caller may hand out or take back grants on one resource: administrators
/// always; others need MANAGE on it, and wildcard grants are for administrators.
async fn may_manage(
    auth: &Auth,
    caller: &User,
    resource_type: ResourceType,
    resource_id: &str,
) -> Result<bool, Error> {
    if caller.is_admin {
        return Ok(true);
    }
    if resource_id == "*" {
        return auth.administers(caller, DEFAULT_WORKSPACE).await;
    }
    Ok(auth
        .permission(caller, resource_type, resource_id)
        .await?
        .allows(Access::Manage))
}

fn grantable_type(name: &str) -> Result<ResourceType, ApiError> {
    let resource_type = ResourceType::parse(name)?;
    if resource_type == ResourceType::Workspace {
        return Err(ApiError(Error::invalid(
            "Workspace permissions are granted through roles (roles/permissions/add).",
        )));
    }
    Ok(resource_type)
}

/// A per-user grant request, read and checked: the user it is about exists, and the caller
/// may manage the resource (or, with `self_allowed`, is that user).
struct CheckedGrant {
    target: User,
    resource_type: ResourceType,
    resource: String,
}

async fn check_grant(
    auth: &Auth,
    caller: &User,
    body: &ResourceGrant,
    self_allowed: bool,
) -> Result<Option<CheckedGrant>, ApiError> {
    let username = required(&body.username, "username")?;
    let resource_type = grantable_type(required(&body.resource_type, "resource_type")?)?;
    let resource = resource_id(&body.resource_id)?;
    let target = auth.users.existing_user(username).await?.user;
    let is_self = self_allowed && caller.id == target.id;
    if !is_self && !may_manage(auth, caller, resource_type, &resource).await? {
        return Ok(None);
    }
    Ok(Some(CheckedGrant {
        target,
        resource_type,
        resource,
    }))
}

async fn grant_permission(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<ResourceGrant>,
) -> Reply {
    let permission = Permission::parse(required(&body.permission, "permission")?)?;
    let Some(grant) = check_grant(&auth, &caller, &body, false).await? else {
        return Ok(denied());
    };
    validate_grant(grant.resource_type, &grant.resource, permission)?;
    auth.users
        .grant_direct(
            grant.target.id,
            DEFAULT_WORKSPACE,
            grant.resource_type.name(),
            &grant.resource,
            permission.name(),
        )
        .await?;
    auth.grants_changed();
    empty()
}

async fn revoke_permission(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<ResourceGrant>,
) -> Reply {
    let Some(grant) = check_grant(&auth, &caller, &body, false).await? else {
        return Ok(denied());
    };
    auth.users
        .revoke_direct(
            grant.target.id,
            DEFAULT_WORKSPACE,
            grant.resource_type.name(),
            &grant.resource,
        )
        .await?;
    auth.grants_changed();
    empty()
}

async fn get_permission(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<ResourceGrant>,
) -> Reply {
    let Some(grant) = check_grant(&auth, &caller, &query, true).await? else {
        return Ok(denied());
    };
    let permission = auth
        .permission(&grant.target, grant.resource_type, &grant.resource)
        .await?;
    ok(json!({
        "allowed": permission.allows(Access::Use),
        "permission": permission.name(),
    }))
}

async fn list_user_roles(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<ByUsername>,
) -> Reply {
    let username = required(&query.username, "username")?;
    let target = auth.users.existing_user(username).await?.user;
    let mut roles = auth.users.user_roles(target.id).await?;
    if !caller.is_admin && caller.id != target.id {
        let administered = auth.administered_workspaces(caller.id).await?;
        if administered.is_empty() {
            return Ok(denied());
        }
        roles.retain(|role| administered.contains(&role.workspace));
    }
    ok(json!({ "roles": roles }))
}

// ---- roles ----

#[derive(Deserialize)]
struct RoleBody {
    role_id: Option<Value>,
    workspace: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

async fn create_role(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<RoleBody>,
) -> Reply {
    let workspace = required(&body.workspace, "workspace")?;
    let name = required(&body.name, "name")?;
    if !auth.administers(&caller, workspace).await? {
        return Ok(denied());
    }
    if name.starts_with("__user_") {
        return Err(ApiError(Error::invalid(
            "Role names starting with '__user_' are reserved for per-user grants.",
        )));
    }
    let role = auth
        .users
        .create_role(workspace, name, body.description.as_deref())
        .await?;
    ok(json!({ "role": role }))
}

/// The role, if the caller administers its workspace.
async fn administered_role(
    auth: &Auth,
    caller: &User,
    role_id: i64,
) -> Result<Result<Role, Response>, ApiError> {
    let role = auth.users.existing_role(role_id).await?;
    if auth.administers(caller, &role.workspace).await? {
        Ok(Ok(role))
    } else {
        Ok(Err(denied()))
    }
}

async fn get_role(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<RoleBody>,
) -> Reply {
    let role_id = id(&query.role_id, "role_id")?;
    match administered_role(&auth, &caller, role_id).await? {
        Ok(role) => ok(json!({ "role": role })),
        Err(refused) => Ok(refused),
    }
}

async fn list_roles(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<RoleBody>,
) -> Reply {
    match query.workspace.as_deref().filter(|w| !w.is_empty()) {
        Some(workspace) => {
            if !auth.administers(&caller, workspace).await? {
                return Ok(denied());
            }
            let roles = auth.users.list_roles(Some(workspace)).await?;
            ok(json!({ "roles": roles }))
        }
        None => {
            if !caller.is_admin {
                return Ok(denied());
            }
            let roles = auth.users.list_roles(None).await?;
            ok(json!({ "roles": roles }))
        }
    }
}

async fn update_role(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<RoleBody>,
) -> Reply {
    let role_id = id(&body.role_id, "role_id")?;
    if body.name.is_none() && body.description.is_none() {
        return Err(ApiError(Error::invalid(
            "At least one of 'name' or 'description' must be provided.",
        )));
    }
    if let Err(refused) = administered_role(&auth, &caller, role_id).await? {
        return Ok(refused);
    }
    let role = auth
        .users
        .update_role(role_id, body.name.as_deref(), body.description.as_deref())
        .await?;
    auth.grants_changed();
    ok(json!({ "role": role }))
}

async fn delete_role(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<RoleBody>,
) -> Reply {
    let role_id = id(&body.role_id, "role_id")?;
    if let Err(refused) = administered_role(&auth, &caller, role_id).await? {
        return Ok(refused);
    }
    auth.users.delete_role(role_id).await?;
    auth.grants_changed();
    empty()
}

#[derive(Deserialize)]
struct RolePermissionBody {
    role_id: Option<Value>,
    role_permission_id: Option<Value>,
    resource_type: Option<String>,
    resource_pattern: Option<String>,
    permission: Option<String>,
}

async fn add_role_permission(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<RolePermissionBody>,
) -> Reply {
    let role_id = id(&body.role_id, "role_id")?;
    let resource_type = ResourceType::parse(required(&body.resource_type, "resource_type")?)?;
    let pattern = required(&body.resource_pattern, "resource_pattern")?;
    let permission = Permission::parse(required(&body.permission, "permission")?)?;
    validate_grant(resource_type, pattern, permission)?;
    if let Err(refused) = administered_role(&auth, &caller, role_id).await? {
        return Ok(refused);
    }
    let granted = auth
        .users
        .add_role_permission(role_id, resource_type.name(), pattern, permission.name())
        .await?;
    auth.grants_changed();
    ok(json!({ "role_permission": granted }))
}

/// The role a role permission belongs to, if the caller administers its workspace.
async fn administered_role_permission(
    auth: &Auth,
    caller: &User,
    body: &RolePermissionBody,
) -> Result<Result<i64, Response>, ApiError> {
    let permission_id = id(&body.role_permission_id, "role_permission_id")?;
    let existing = auth.users.role_permission(permission_id).await?;
    Ok(administered_role(auth, caller, existing.role_id)
        .await?
        .map(|_| permission_id))
}

async fn remove_role_permission(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<RolePermissionBody>,
) -> Reply {
    let permission_id = match administered_role_permission(&auth, &caller, &body).await? {
        Ok(id) => id,
        Err(refused) => return Ok(refused),
    };
    auth.users.remove_role_permission(permission_id).await?;
    auth.grants_changed();
    empty()
}

async fn update_role_permission(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<RolePermissionBody>,
) -> Reply {
    let permission = Permission::parse(required(&body.permission, "permission")?)?;
    let permission_id = match administered_role_permission(&auth, &caller, &body).await? {
        Ok(id) => id,
        Err(refused) => return Ok(refused),
    };
    let existing = auth.users.role_permission(permission_id).await?;
    let resource_type = ResourceType::parse(&existing.resource_type)?;
    validate_grant(resource_type, &existing.resource_pattern, permission)?;
    let updated = auth
        .users
        .update_role_permission(permission_id, permission.name())
        .await?;
    auth.grants_changed();
    ok(json!({ "role_permission": updated }))
}

async fn list_role_permissions(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<RolePermissionBody>,
) -> Reply {
    let role_id = id(&query.role_id, "role_id")?;
    match administered_role(&auth, &caller, role_id).await? {
        Ok(role) => ok(json!({ "role_permissions": role.permissions })),
        Err(refused) => Ok(refused),
    }
}

#[derive(Deserialize)]
struct AssignmentBody {
    username: Option<String>,
    role_id: Option<Value>,
}

async fn assign_role(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<AssignmentBody>,
) -> Reply {
    let username = required(&body.username, "username")?;
    let role_id = id(&body.role_id, "role_id")?;
    if let Err(refused) = administered_role(&auth, &caller, role_id).await? {
        return Ok(refused);
    }
    let user = auth.users.existing_user(username).await?.user;
    let assignment = auth.users.assign_role(user.id, role_id).await?;
    auth.grants_changed();
    ok(json!({ "assignment": assignment }))
}

async fn unassign_role(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<AssignmentBody>,
) -> Reply {
    let username = required(&body.username, "username")?;
    let role_id = id(&body.role_id, "role_id")?;
    if let Err(refused) = administered_role(&auth, &caller, role_id).await? {
        return Ok(refused);
    }
    let user = auth.users.existing_user(username).await?.user;
    auth.users.unassign_role(user.id, role_id).await?;
    auth.grants_changed();
    empty()
}

async fn list_role_users(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<AssignmentBody>,
) -> Reply {
    let role_id = id(&query.role_id, "role_id")?;
    if let Err(refused) = administered_role(&auth, &caller, role_id).await? {
        return Ok(refused);
    }
    let assignments = auth.users.role_users(role_id).await?;
    ok(json!({ "assignments": assignments }))
}

// ---- the per-resource permission endpoints of older clients ----

#[derive(Deserialize)]
struct LegacyGrant {
    experiment_id: Option<Value>,
    name: Option<String>,
    username: Option<String>,
    permission: Option<String>,
}

/// Which resource an older per-resource endpoint names, and how its answers spell it.
#[derive(Clone, Copy)]
enum LegacyKind {
    Experiment,
    RegisteredModel,
}

impl LegacyKind {
    fn resource_type(self) -> ResourceType {
        match self {
            LegacyKind::Experiment => ResourceType::Experiment,
            LegacyKind::RegisteredModel => ResourceType::RegisteredModel,
        }
    }

    fn resource(self, body: &LegacyGrant) -> Result<String, ApiError> {
        match self {
            LegacyKind::Experiment => resource_id(&body.experiment_id).map_err(|_| {
                ApiError(Error::invalid(
                    "Missing value for required parameter 'experiment_id'.",
                ))
            }),
            LegacyKind::RegisteredModel => required(&body.name, "name").map(str::to_string),
        }
    }

    fn render(self, resource: &str, user_id: i64, permission: &str) -> Value {
        match self {
            LegacyKind::Experiment => json!({
                "experiment_permission": {
                    "experiment_id": resource,
                    "user_id": user_id,
                    "permission": permission,
                }
            }),
            LegacyKind::RegisteredModel => json!({
                "registered_model_permission": {
                    "name": resource,
                    "user_id": user_id,
                    "permission": permission,
                    "workspace": DEFAULT_WORKSPACE,
                }
            }),
        }
    }

    fn not_found(self, resource: &str, username: &str) -> ApiError {
        ApiError(Error::not_found(match self {
            LegacyKind::Experiment => format!(
                "Experiment permission with experiment_id={resource} and username={username} not found"
            ),
            LegacyKind::RegisteredModel => format!(
                "Registered model permission with workspace={DEFAULT_WORKSPACE}, name={resource} and username={username} not found"
            ),
        }))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LegacyOp {
    Create,
    Get,
    Update,
    Delete,
}

async fn legacy(
    auth: Arc<Auth>,
    caller: User,
    body: LegacyGrant,
    kind: LegacyKind,
    op: LegacyOp,
) -> Reply {
    let resource = kind.resource(&body)?;
    let username = required(&body.username, "username")?;
    if !may_manage(&auth, &caller, kind.resource_type(), &resource).await? {
        return Ok(denied());
    }
    let user = auth.users.existing_user(username).await?.user;
    let type_name = kind.resource_type().name();
    let existing = auth
        .users
        .direct_grant(user.id, DEFAULT_WORKSPACE, type_name, &resource)
        .await?;
    match op {
        LegacyOp::Get => match existing {
            Some(permission) => ok(kind.render(&resource, user.id, &permission)),
            None => Err(kind.not_found(&resource, username)),
        },
        LegacyOp::Delete => {
            if existing.is_none() {
                return Err(kind.not_found(&resource, username));
            }
            auth.users
                .revoke_direct(user.id, DEFAULT_WORKSPACE, type_name, &resource)
                .await?;
            auth.grants_changed();
            empty()
        }
        LegacyOp::Create | LegacyOp::Update => {
            let permission = Permission::parse(required(&body.permission, "permission")?)?;
            validate_grant(kind.resource_type(), &resource, permission)?;
            match (op, &existing) {
                (LegacyOp::Create, Some(_)) => {
                    return Err(ApiError(Error::already_exists(format!(
                        "A permission for username={username} on {resource} already exists."
                    ))));
                }
                (LegacyOp::Update, None) => return Err(kind.not_found(&resource, username)),
                _ => {}
            }
            auth.users
                .grant_direct(
                    user.id,
                    DEFAULT_WORKSPACE,
                    type_name,
                    &resource,
                    permission.name(),
                )
                .await?;
            auth.grants_changed();
            if op == LegacyOp::Create {
                ok(kind.render(&resource, user.id, permission.name()))
            } else {
                empty()
            }
        }
    }
}

macro_rules! legacy_handler {
    ($name:ident, $kind:expr, $op:expr) => {
        async fn $name(
            State(auth): State<Arc<Auth>>,
            Extension(Caller(caller)): Extension<Caller>,
            Msg(body): Msg<LegacyGrant>,
        ) -> Reply {
            legacy(auth, caller, body, $kind, $op).await
        }
    };
}

legacy_handler!(
    create_experiment_permission,
    LegacyKind::Experiment,
    LegacyOp::Create
);
legacy_handler!(
    get_experiment_permission,
    LegacyKind::Experiment,
    LegacyOp::Get
);
legacy_handler!(
    update_experiment_permission,
    LegacyKind::Experiment,
    LegacyOp::Update
);
legacy_handler!(
    delete_experiment_permission,
    LegacyKind::Experiment,
    LegacyOp::Delete
);
legacy_handler!(
    create_model_permission,
    LegacyKind::RegisteredModel,
    LegacyOp::Create
);
legacy_handler!(
    get_model_permission,
    LegacyKind::RegisteredModel,
    LegacyOp::Get
);
legacy_handler!(
    update_model_permission,
    LegacyKind::RegisteredModel,
    LegacyOp::Update
);
legacy_handler!(
    delete_model_permission,
    LegacyKind::RegisteredModel,
    LegacyOp::Delete
);

// ---- personal access tokens ----

/// The longest a token may live, and the life of one created without a choice.
const MAX_TOKEN_DAYS: i64 = 3650;

#[derive(Deserialize)]
struct NewToken {
    name: Option<String>,
    expires_in_days: Option<Value>,
}

async fn create_token(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<NewToken>,
) -> Reply {
    let name = required(&body.name, "name")?;
    if name == mlox_core::auth::SESSION_TOKEN_NAME {
        return Err(ApiError(Error::invalid(format!(
            "The token name '{name}' is reserved for sign-in sessions."
        ))));
    }
    if name.len() > 256 {
        return Err(ApiError(Error::invalid(
            "A token name is at most 256 characters.",
        )));
    }
    let days = match &body.expires_in_days {
        None | Some(Value::Null) => None,
        Some(value) => {
            let days = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            match days {
                Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(d),
                _ => {
                    return Err(ApiError(Error::invalid(format!(
                        "expires_in_days must be a whole number of days from 1 to {MAX_TOKEN_DAYS}."
                    ))));
                }
            }
        }
    };
    let expires_at = days.map(|d| mlox_store::now_ms() + d * 86_400_000);
    let (secret, digest) = crate::credentials::new_token();
    let info = auth
        .users
        .create_token(caller.id, name, &digest, expires_at)
        .await?;
    ok(json!({ "token": secret, "token_info": info }))
}

async fn list_tokens(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(query): Msg<ByUsername>,
) -> Reply {
    let owner = match query.username.as_deref().filter(|u| !u.is_empty()) {
        Some(username) if username != caller.username => {
            if !caller.is_admin {
                return Ok(denied());
            }
            auth.users.existing_user(username).await?.user
        }
        _ => caller,
    };
    let tokens = auth.users.list_tokens(owner.id).await?;
    ok(json!({ "tokens": tokens }))
}

#[derive(Deserialize)]
struct TokenId {
    id: Option<String>,
}

async fn delete_token(
    State(auth): State<Arc<Auth>>,
    Extension(Caller(caller)): Extension<Caller>,
    Msg(body): Msg<TokenId>,
) -> Reply {
    let token_id = required(&body.id, "id")?;
    let owner = auth.users.token_owner(token_id).await?;
    match owner {
        // Someone else's token: administrators may revoke it; others learn nothing of it.
        Some(owner) if owner == caller.id || caller.is_admin => {}
        _ => {
            return Err(ApiError(Error::not_found(format!(
                "Token with id={token_id} not found"
            ))));
        }
    }
    auth.users.delete_token(token_id).await?;
    auth.user_changed(&caller.username);
    empty()
}
