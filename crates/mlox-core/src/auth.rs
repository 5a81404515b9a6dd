//! Who may do what: the permission levels of MLflow's basic-auth app, the resource types a
//! grant can name, how the grants a user holds fold into one permission, the password rule,
//! and which permission each API route needs on which resource. The table is data, so the
//! HTTP layer that enforces it and the tests that read it agree by construction; a route the
//! table does not name is refused to everyone but administrators (fail closed).

use crate::{Error, Result};

/// A permission level, from none to full control. `Deny` is an explicit refusal that wins
/// over any positive grant it is folded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    Read,
    Use,
    Edit,
    Manage,
    NoPermissions,
    Deny,
}

/// What a request does to a resource; each permission allows a prefix of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Use,
    Update,
    Delete,
    Manage,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::Read,
        Permission::Use,
        Permission::Edit,
        Permission::Manage,
        Permission::NoPermissions,
        Permission::Deny,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Use => "USE",
            Permission::Edit => "EDIT",
            Permission::Manage => "MANAGE",
            Permission::NoPermissions => "NO_PERMISSIONS",
            Permission::Deny => "DENY",
        }
    }

    pub fn parse(name: &str) -> Result<Permission> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let valid: Vec<&str> = Permission::ALL.iter().map(|p| p.name()).collect();
                Error::invalid(format!(
                    "Invalid permission '{name}'. Valid permissions are: {}",
                    valid.join(", ")
                ))
            })
    }

    /// The order positive grants fold in: the higher wins.
    fn priority(self) -> i32 {
        match self {
            Permission::Deny => -1,
            Permission::NoPermissions => 0,
            Permission::Read => 1,
            Permission::Use => 2,
            Permission::Edit => 3,
            Permission::Manage => 4,
        }
    }

    pub fn allows(self, access: Access) -> bool {
        let needed = match access {
            Access::Read => 1,
            Access::Use => 2,
            Access::Update => 3,
            Access::Delete | Access::Manage => 4,
        };
        self.priority() >= needed
    }
}

/// What a grant is about. Per-resource grants name one id; the others only `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceType {
    Experiment,
    RegisteredModel,
    Prompt,
    Scorer,
    GatewaySecret,
    GatewayEndpoint,
    GatewayModelDefinition,
    McpServer,
    Workspace,
    Run,
    Trace,
    Assessment,
    LoggedModel,
    ReviewQueue,
    RegisteredModelVersion,
    PromptVersion,
    ScorerVersion,
    McpServerVersion,
}

impl ResourceType {
    pub const ALL: [ResourceType; 18] = [
        ResourceType::Experiment,
        ResourceType::RegisteredModel,
        ResourceType::Prompt,
        ResourceType::Scorer,
        ResourceType::GatewaySecret,
        ResourceType::GatewayEndpoint,
        ResourceType::GatewayModelDefinition,
        ResourceType::McpServer,
        ResourceType::Workspace,
        ResourceType::Run,
        ResourceType::Trace,
        ResourceType::Assessment,
        ResourceType::LoggedModel,
        ResourceType::ReviewQueue,
        ResourceType::RegisteredModelVersion,
        ResourceType::PromptVersion,
        ResourceType::ScorerVersion,
        ResourceType::McpServerVersion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Experiment => "experiment",
            ResourceType::RegisteredModel => "registered_model",
            ResourceType::Prompt => "prompt",
            ResourceType::Scorer => "scorer",
            ResourceType::GatewaySecret => "gateway_secret",
            ResourceType::GatewayEndpoint => "gateway_endpoint",
            ResourceType::GatewayModelDefinition => "gateway_model_definition",
            ResourceType::McpServer => "mcp_server",
            ResourceType::Workspace => "workspace",
            ResourceType::Run => "run",
            ResourceType::Trace => "trace",
            ResourceType::Assessment => "assessment",
            ResourceType::LoggedModel => "logged_model",
            ResourceType::ReviewQueue => "review_queue",
            ResourceType::RegisteredModelVersion => "registered_model_version",
            ResourceType::PromptVersion => "prompt_version",
            ResourceType::ScorerVersion => "scorer_version",
            ResourceType::McpServerVersion => "mcp_server_version",
        }
    }

    pub fn parse(name: &str) -> Result<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let valid: Vec<&str> = ResourceType::ALL.iter().map(|t| t.name()).collect();
                Error::invalid(format!(
                    "Invalid resource type '{name}'. Valid resource types are: {}",
                    valid.join(", ")
                ))
            })
    }

    /// Whether a grant may name one resource of this type; the others take only `*`, because
    /// a per-id grant on them would be honoured by a point route and lapse in a search.
    pub fn takes_specific_ids(self) -> bool {
        matches!(
            self,
            ResourceType::Experiment
                | ResourceType::RegisteredModel
                | ResourceType::Prompt
                | ResourceType::Scorer
                | ResourceType::GatewaySecret
                | ResourceType::GatewayEndpoint
                | ResourceType::GatewayModelDefinition
                | ResourceType::McpServer
        )
    }
}

/// Checks a grant's shape: its pattern is `*` or, for per-resource types, one id; a
/// workspace grant is `USE` or `MANAGE`.
pub fn validate_grant(
    resource_type: ResourceType,
    pattern: &str,
    permission: Permission,
) -> Result<()> {
    if pattern.is_empty() {
        return Err(Error::invalid("resource_pattern must not be empty."));
    }
    if pattern != "*" && !resource_type.takes_specific_ids() {
        return Err(Error::invalid(format!(
            "Resource type '{}' only accepts the pattern '*'.",
            resource_type.name()
        )));
    }
    if resource_type == ResourceType::Workspace
        && !matches!(permission, Permission::Use | Permission::Manage)
    {
        return Err(Error::invalid(
            "Workspace grants must be USE or MANAGE.".to_string(),
        ));
    }
    if permission == Permission::NoPermissions {
        return Err(Error::invalid(
            "NO_PERMISSIONS cannot be granted; revoke the grant or grant DENY instead.",
        ));
    }
    Ok(())
}

/// One grant a user holds through one of their roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub resource_type: ResourceType,
    pub pattern: String,
    pub permission: Permission,
}

/// The permission a user's grants give on one resource (`key` is its id or name), or `None`
/// when no grant speaks of it and the server's default applies. An explicit `DENY` wins over
/// every positive grant, except for a workspace administrator (`workspace`/`*` with MANAGE),
/// who cannot be restricted inside their workspace.
pub fn fold_grants<'a>(
    grants: impl IntoIterator<Item = &'a Grant>,
    resource_type: ResourceType,
    key: &str,
) -> Option<Permission> {
    let mut best: Option<Permission> = None;
    let mut denied = false;
    let mut workspace_admin = false;
    let raise = |p: Permission, best: &mut Option<Permission>| {
        if best.is_none_or(|b| p.priority() > b.priority()) {
            *best = Some(p);
        }
    };
    for grant in grants {
        if grant.resource_type == ResourceType::Workspace && grant.pattern == "*" {
            // Workspace USE says "may join and create"; only MANAGE reaches the resources.
            if resource_type == ResourceType::Workspace || grant.permission == Permission::Manage {
                workspace_admin |= grant.permission == Permission::Manage;
                raise(grant.permission, &mut best);
            }
            continue;
        }
        if grant.resource_type != resource_type || (grant.pattern != "*" && grant.pattern != key) {
            continue;
        }
        if grant.permission == Permission::Deny {
            denied = true;
        } else {
            raise(grant.permission, &mut best);
        }
    }
    if denied && !workspace_admin {
        return Some(Permission::Deny);
    }
    best
}

/// The workspace every resource belongs to while workspaces are off.
pub const DEFAULT_WORKSPACE: &str = "default";

/// A user as the API shows it (never with its password hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}

/// One grant of a role.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RolePermission {
    pub id: i64,
    pub role_id: i64,
    pub resource_type: String,
    pub resource_pattern: String,
    pub permission: String,
}

/// A named set of grants inside one workspace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub workspace: String,
    pub description: Option<String>,
    pub permissions: Vec<RolePermission>,
}

impl Role {
    /// The grants of this role in the fold's terms; rows with names this build does not know
    /// (written by a newer server) are skipped rather than widened.
    pub fn grants(&self) -> impl Iterator<Item = Grant> + '_ {
        self.permissions.iter().filter_map(|p| {
            Some(Grant {
                resource_type: ResourceType::parse(&p.resource_type).ok()?,
                pattern: p.resource_pattern.clone(),
                permission: Permission::parse(&p.permission).ok()?,
            })
        })
    }
}

/// The role that holds the grants made to one user directly (`users/permissions/grant` and
/// the older per-resource permission APIs), as MLflow names it.
pub fn personal_role_name(user_id: i64) -> String {
    format!("__user_{user_id}__")
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RoleAssignment {
    pub id: i64,
    pub user_id: i64,
    pub role_id: i64,
}

/// The name the web UI's sign-in sessions carry: they are tokens held in a cookie, kept apart
/// from the personal access tokens a user lists.
pub const SESSION_TOKEN_NAME: &str = "__web_session__";

/// A personal access token as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// Passwords shorter than this are refused (MLflow 3.17's floor).
pub const MIN_PASSWORD_LENGTH: usize = 12;

pub fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return Err(Error::invalid(format!(
            "Password must be at least {MIN_PASSWORD_LENGTH} characters."
        )));
    }
    Ok(())
}

pub fn validate_username(username: &str) -> Result<()> {
    if username.is_empty() {
        return Err(Error::invalid("Username and password cannot be empty."));
    }
    if username.len() > 256 || username.chars().any(|c| c.is_control() || c == ':') {
        return Err(Error::invalid(
            "A username is at most 256 characters, without ':' or control characters.",
        ));
    }
    Ok(())
}

/// Why a gate turned a request away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or ones the tracking server does not accept.
    Unauthenticated,
    /// Signed in, without USE on the resource.
    Denied,
    /// The tracking server that vouches for credentials could not be asked.
    Unavailable(String),
}

pub type GateFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<(), Refusal>> + Send + 'a>,
>;

/// Admission to a model server or a gateway: whether the bearer of an `Authorization` header
/// value may use one resource (a served model, a gateway endpoint), or, with no resource named,
/// is signed in at all. Implemented outside the domain (by asking the tracking server); the
/// serving and gateway crates only call it.
pub trait AccessGate: Send + Sync {
    fn admit<'a>(
        &'a self,
        authorization: Option<&'a str>,
        resource: Option<&'a str>,
    ) -> GateFuture<'a>;
}

/// Where in a request the resource a rule guards is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// An experiment id in this query or body field.
    Experiment(&'static str),
    /// An experiment name in this field.
    ExperimentName(&'static str),
    /// A run id in `run_id`, or `run_uuid` as older clients send it; its experiment decides.
    Run,
    /// Every run id of the list in `run_ids` (the UI's bulk history reads).
    Runs,
    /// A registered model (or prompt) name in this field.
    RegisteredModel(&'static str),
    /// The logged model whose id is the path segment after `logged-models/`.
    LoggedModel,
    /// The trace named by `trace_id`/`request_id`, else by the path segment after `traces/`.
    Trace,
    /// Every trace of the list in `trace_ids`.
    Traces,
    /// An experiment id in this request header (OpenTelemetry exports name it there).
    ExperimentHeader(&'static str),
    /// A proxied artifact path whose first segment is the experiment id.
    ArtifactPath,
    /// The gateway endpoint a call names: the path segment after `/gateway/`, or the body's
    /// `model` on OpenAI's route. Grants are keyed by the endpoint's id, as MLflow keys them.
    GatewayEndpoint,
}

/// Searches whose answers are cut down to what the caller may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    Experiments,
    RegisteredModels,
    ModelVersions,
    LoggedModels,
    /// Runs and traces are searched inside experiments named by the request; the experiments
    /// the caller may not read are taken out of it before the search runs.
    RunsInExperiments,
    TracesInExperiments,
}

/// What a route needs from its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No credentials: health checks, the UI's static files.
    Public,
    /// Any signed-in user (creating an experiment or a model, the UI page).
    Authenticated,
    /// `Access` on the resource the request names.
    Resource(Access, Target),
    /// Any signed-in user; the answer is filtered.
    Filtered(Listing),
    /// The users, roles and grants API: the handler checks who may do what itself.
    AuthApi,
}

/// The rule for a request, or `None` when no rule names the route: then only administrators
/// may call it.
pub fn rule_for(method: &str, path: &str) -> Option<Rule> {
    use Access::*;
    use Rule::*;
    use Target::*;
    if matches!(path, "/health" | "/favicon.ico") || path.starts_with("/static-files/") {
        return Some(Public);
    }
    if let Some(rest) = path.strip_prefix("/api/2.0/mlflow-artifacts/") {
        return artifact_rule(method, rest);
    }
    match path {
        "/" | "/version" | "/logout" => return Some(Authenticated),
        "/login" => return Some(Public),
        "/v1/traces" if method == "POST" => {
            return Some(Resource(Update, ExperimentHeader("x-mlflow-experiment-id")));
        }
        "/get-artifact" => return Some(Resource(Read, Run)),
        "/model-versions/get-artifact" => return Some(Resource(Read, RegisteredModel("name"))),
        // Calls to the gateway's stored endpoints need USE on the endpoint, as in MLflow.
        "/gateway/mlflow/v1/models" => return Some(Authenticated),
        "/gateway/mlflow/v1/chat/completions" => return Some(Resource(Use, GatewayEndpoint)),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/gateway/")
        && let Some((name, "mlflow/invocations")) = rest.split_once('/')
        && !name.is_empty()
    {
        return Some(Resource(Use, GatewayEndpoint));
    }
    let Some(route) = crate::wire::api_route(path) else {
        // The web UI's pages and assets: signing in is enough to load them.
        return (method == "GET" && !path.starts_with("/api/") && !path.starts_with("/ajax-api/"))
            .then_some(Authenticated);
    };
    api_rule(method, route)
}

fn artifact_rule(method: &str, rest: &str) -> Option<Rule> {
    use Access::*;
    use Rule::*;
    let access = match method {
        "GET" | "HEAD" => Read,
        "PUT" | "POST" => Update,
        "DELETE" => Delete,
        _ => return None,
    };
    if rest == "artifacts" || rest.starts_with("artifacts/") || rest.starts_with("mpu/") {
        Some(Resource(access, Target::ArtifactPath))
    } else {
        None
    }
}

fn api_rule(method: &str, route: &str) -> Option<Rule> {
    use Access::*;
    use Listing::*;
    use Rule::*;
    use Target::*;
    let segments: Vec<&str> = route.split('/').collect();
    let rule = match (method, route) {
        ("GET", "server-info") => Authenticated,
        // Users, roles, grants and tokens: their handlers check self / admin / manage.
        (_, r) if r.starts_with("users/") || r.starts_with("roles/") => AuthApi,
        (_, r) if r.starts_with("experiments/permissions/") => AuthApi,
        (_, r) if r.starts_with("registered-models/permissions/") => AuthApi,

        ("POST", "experiments/create") => Authenticated,
        ("GET", "experiments/get") => Resource(Read, Experiment("experiment_id")),
        ("GET", "experiments/get-by-name") => Resource(Read, ExperimentName("experiment_name")),
        ("GET" | "POST", "experiments/search") => Filtered(Experiments),
        ("POST", "experiments/update") => Resource(Update, Experiment("experiment_id")),
        ("POST", "experiments/set-experiment-tag" | "experiments/delete-experiment-tag") => {
            Resource(Update, Experiment("experiment_id"))
        }
        ("POST", "experiments/delete" | "experiments/restore") => {
            Resource(Delete, Experiment("experiment_id"))
        }
        ("POST", "experiments/search-datasets") => Filtered(RunsInExperiments),

        ("POST", "runs/create") => Resource(Update, Experiment("experiment_id")),
        ("GET", "runs/get") => Resource(Read, Run),
        (
            "POST",
            "runs/update" | "runs/log-metric" | "runs/log-parameter" | "runs/log-batch"
            | "runs/set-tag" | "runs/delete-tag" | "runs/log-inputs" | "runs/outputs"
            | "runs/log-model" | "upload-artifact",
        ) => Resource(Update, Run),
        ("POST", "runs/delete" | "runs/restore") => Resource(Delete, Run),
        ("POST", "runs/create-promptlab-run") => Resource(Update, Experiment("experiment_id")),
        ("GET" | "POST", "runs/search") => Filtered(RunsInExperiments),
        ("GET", "metrics/get-history" | "artifacts/list") => Resource(Read, Run),
        ("GET", "metrics/get-history-bulk" | "metrics/get-history-bulk-interval") => {
            Resource(Read, Runs)
        }

        ("POST", "logged-models") => Resource(Update, Experiment("experiment_id")),
        ("POST", "logged-models/search") => Filtered(LoggedModels),
        ("GET", _) if segments.first() == Some(&"logged-models") && segments.len() >= 2 => {
            Resource(Read, LoggedModel)
        }
        ("PATCH", _) if segments.first() == Some(&"logged-models") && segments.len() >= 2 => {
            Resource(Update, LoggedModel)
        }
        ("POST", _) if segments.first() == Some(&"logged-models") && segments.len() == 3 => {
            Resource(Update, LoggedModel)
        }
        ("DELETE", _) if segments.first() == Some(&"logged-models") && segments.len() >= 2 => {
            Resource(Delete, LoggedModel)
        }

        ("POST", "registered-models/create") => Authenticated,
        ("GET" | "POST", "registered-models/get" | "registered-models/get-latest-versions") => {
            Resource(Read, RegisteredModel("name"))
        }
        ("GET", "registered-models/alias") => Resource(Read, RegisteredModel("name")),
        ("GET" | "POST", "registered-models/search") => Filtered(RegisteredModels),
        (
            "POST" | "PATCH",
            "registered-models/rename"
            | "registered-models/update"
            | "registered-models/set-tag"
            | "registered-models/alias",
        ) => Resource(Update, RegisteredModel("name")),
        ("DELETE", "registered-models/alias" | "registered-models/delete-tag") => {
            Resource(Delete, RegisteredModel("name"))
        }
        ("DELETE", "registered-models/delete") => Resource(Delete, RegisteredModel("name")),
        ("GET", "model-versions/get" | "model-versions/get-download-uri") => {
            Resource(Read, RegisteredModel("name"))
        }
        ("GET" | "POST", "model-versions/search") => Filtered(ModelVersions),
        (
            "POST" | "PATCH",
            "model-versions/create"
            | "model-versions/update"
            | "model-versions/transition-stage"
            | "model-versions/set-tag",
        ) => Resource(Update, RegisteredModel("name")),
        ("DELETE", "model-versions/delete" | "model-versions/delete-tag") => {
            Resource(Delete, RegisteredModel("name"))
        }
        ("GET", "model-versions/get-artifact") => Resource(Read, RegisteredModel("name")),

        ("POST", "traces") => Resource(Update, Experiment("experiment_id")),
        ("GET" | "POST", "traces/search") => Filtered(TracesInExperiments),
        ("POST", "traces/calculate-filter-correlation" | "traces/metrics") => {
            Filtered(TracesInExperiments)
        }
        ("POST", "traces/delete-traces") => Resource(Delete, Experiment("experiment_id")),
        ("POST", "traces/link-to-run") => Resource(Update, Run),
        ("GET", "traces/get" | "get-trace-artifact") => Resource(Read, Trace),
        ("GET", "traces/batchGet") => Resource(Read, Traces),
        ("GET", _) if segments.first() == Some(&"traces") && segments.len() >= 2 => {
            Resource(Read, Trace)
        }
        ("PATCH" | "POST", _) if segments.first() == Some(&"traces") && segments.len() >= 2 => {
            Resource(Update, Trace)
        }
        ("DELETE", _) if segments.first() == Some(&"traces") && segments.len() >= 3 => {
            Resource(Update, Trace)
        }
        ("POST", "scorers/register") => Resource(Update, Experiment("experiment_id")),
        ("GET", "scorers/list" | "scorers/versions" | "scorers/get") => {
            Resource(Read, Experiment("experiment_id"))
        }
        ("DELETE", "scorers/delete") => Resource(Delete, Experiment("experiment_id")),
        // Webhooks deliver to any address the server can reach: administrators only.
        _ => return None,
    };
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(t: ResourceType, pattern: &str, p: Permission) -> Grant {
        Grant {
            resource_type: t,
            pattern: pattern.to_string(),
            permission: p,
        }
    }

    #[test]
    fn each_permission_allows_a_prefix_of_the_accesses() {
        let table = [
            (Permission::Read, [true, false, false, false, false]),
            (Permission::Use, [true, true, false, false, false]),
            (Permission::Edit, [true, true, true, false, false]),
            (Permission::Manage, [true, true, true, true, true]),
            (Permission::NoPermissions, [false; 5]),
            (Permission::Deny, [false; 5]),
        ];
        let accesses = [
            Access::Read,
            Access::Use,
            Access::Update,
            Access::Delete,
            Access::Manage,
        ];
        for (permission, allowed) in table {
            for (access, expected) in accesses.iter().zip(allowed) {
                assert_eq!(
                    permission.allows(*access),
                    expected,
                    "{permission:?} {access:?}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()).ok(), Some(p));
        }
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::parse(t.name()).ok(), Some(t));
        }
        let err = ResourceType::parse("bogus").err().map(|e| e.message);
        assert!(err.is_some_and(|m| m.starts_with("Invalid resource type 'bogus'")));
        assert!(Permission::parse("read").is_err());
    }

    #[test]
    fn the_highest_grant_wins_and_deny_wins_over_all_but_a_workspace_admin() {
        use Permission::*;
        use ResourceType::*;
        let grants = [
            grant(Experiment, "1", Read),
            grant(Experiment, "*", Edit),
            grant(Experiment, "2", Manage),
        ];
        assert_eq!(fold_grants(&grants, Experiment, "1"), Some(Edit));
        assert_eq!(fold_grants(&grants, Experiment, "2"), Some(Manage));
        assert_eq!(fold_grants(&grants, RegisteredModel, "1"), None);

        let denied = [grant(Experiment, "*", Manage), grant(Experiment, "3", Deny)];
        assert_eq!(fold_grants(&denied, Experiment, "3"), Some(Deny));
        assert_eq!(fold_grants(&denied, Experiment, "4"), Some(Manage));

        let admin = [grant(Workspace, "*", Manage), grant(Experiment, "3", Deny)];
        assert_eq!(fold_grants(&admin, Experiment, "3"), Some(Manage));

        let member = [grant(Workspace, "*", Use)];
        assert_eq!(fold_grants(&member, Experiment, "3"), None);
        assert_eq!(fold_grants(&member, Workspace, "*"), Some(Use));
    }

    #[test]
    fn grants_on_sub_resources_take_only_the_wildcard() {
        use Permission::*;
        use ResourceType::*;
        assert!(validate_grant(Experiment, "42", Read).is_ok());
        assert!(validate_grant(Run, "42", Read).is_err());
        assert!(validate_grant(Run, "*", Read).is_ok());
        assert!(validate_grant(Workspace, "*", Read).is_err());
        assert!(validate_grant(Workspace, "*", Manage).is_ok());
        assert!(validate_grant(Experiment, "", Read).is_err());
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(validate_password("short-pass1").is_err());
        assert!(validate_password("long-enough-1").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("a:b").is_err());
        assert!(validate_username("alice").is_ok());
    }

    #[test]
    fn routes_name_the_resource_they_touch() {
        use Access::*;
        use Rule::*;
        use Target::*;
        let cases = [
            ("GET", "/health", Some(Public)),
            ("GET", "/version", Some(Authenticated)),
            (
                "GET",
                "/api/2.0/mlflow/experiments/get",
                Some(Resource(Read, Experiment("experiment_id"))),
            ),
            (
                "POST",
                "/ajax-api/2.0/mlflow/experiments/delete",
                Some(Resource(Delete, Experiment("experiment_id"))),
            ),
            (
                "POST",
                "/api/2.0/mlflow/runs/log-batch",
                Some(Resource(Update, Run)),
            ),
            (
                "POST",
                "/api/2.0/mlflow/experiments/create",
                Some(Authenticated),
            ),
            (
                "GET",
                "/api/2.0/mlflow/logged-models/m-1",
                Some(Resource(Read, LoggedModel)),
            ),
            (
                "PUT",
                "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/x.txt",
                Some(Resource(Update, ArtifactPath)),
            ),
            (
                "DELETE",
                "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/x.txt",
                Some(Resource(Delete, ArtifactPath)),
            ),
            ("POST", "/api/2.0/mlflow/users/create", Some(AuthApi)),
            ("POST", "/api/3.0/mlflow/roles/create", Some(AuthApi)),
            ("POST", "/api/2.0/mlflow/webhooks", None),
            (
                "POST",
                "/api/3.0/mlflow/traces/delete-traces",
                Some(Resource(Delete, Experiment("experiment_id"))),
            ),
            (
                "GET",
                "/api/3.0/mlflow/traces/get",
                Some(Resource(Read, Trace)),
            ),
            (
                "PATCH",
                "/api/3.0/mlflow/traces/tr-1/tags",
                Some(Resource(Update, Trace)),
            ),
            (
                "POST",
                "/v1/traces",
                Some(Resource(Update, ExperimentHeader("x-mlflow-experiment-id"))),
            ),
            ("POST", "/graphql", None),
            (
                "POST",
                "/api/3.0/mlflow/traces/metrics",
                Some(Filtered(Listing::TracesInExperiments)),
            ),
            (
                "POST",
                "/ajax-api/2.0/mlflow/runs/create-promptlab-run",
                Some(Resource(Update, Experiment("experiment_id"))),
            ),
            // The AI gateway's configuration and budgets: administrators only.
            ("POST", "/api/3.0/mlflow/gateway/secrets/create", None),
            ("GET", "/ajax-api/2.0/mlflow/gateway-proxy", None),
            (
                "POST",
                "/gateway/chat/mlflow/invocations",
                Some(Resource(Use, GatewayEndpoint)),
            ),
            (
                "POST",
                "/gateway/mlflow/v1/chat/completions",
                Some(Resource(Use, GatewayEndpoint)),
            ),
            ("GET", "/gateway/mlflow/v1/models", Some(Authenticated)),
            ("POST", "/api/3.0/mlflow/gateway/budgets/create", None),
            ("GET", "/#/experiments", Some(Authenticated)),
            ("POST", "/login", Some(Public)),
            ("POST", "/logout", Some(Authenticated)),
        ];
        for (method, path, expected) in cases {
            assert_eq!(rule_for(method, path), expected, "{method} {path}");
        }
    }
}
