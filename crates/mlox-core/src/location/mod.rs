//! Where things are stored, and the names that point at them, parsed in one place.
//!
//! Every crate that meets a location (an artifact root, a run's or model's artifact URI, a
//! model version's source, a model URI given to `mlox serve`) reads it through [`Location`]:
//!
//! | text | [`Location`] |
//! |---|---|
//! | a plain path, `file:///abs`, `file://localhost/abs`, `file:/abs`, `file:rel` | [`Location::Local`] (a `file:` URI percent-decoded) |
//! | `s3://bucket/key` | [`Location::S3`] |
//! | `mlflow-artifacts:/path`, `mlflow-artifacts://host:port/path` | [`Location::MlflowArtifacts`] (a place behind a tracking server's artifact proxy) |
//! | `http://…`, `https://…` | [`Location::Http`] |
//! | `runs:/<run_id>/<path>` | [`Location::Run`] |
//! | `models:/<reference>` | [`Location::Models`] (the reference's grammar is the model URI's) |
//!
//! The path inside a bucket, a proxy or a run is an [`ArtifactPath`], so a location can never
//! name anything outside its root: traversal is refused in every encoding (`..`, `%2e%2e`,
//! double-encoded forms, backslashes, absolute and drive-letter paths, control characters).
//! Local paths are the operator's own and are taken as written.
//!
//! Model version sources may use any scheme MLflow accepts, so the registry's rules read them
//! with the looser [`UriParts`] split instead.

mod host_policy;
mod path;

use std::fmt;
use std::path::{Path, PathBuf};

pub use host_policy::{ALLOWED_SCHEMES_ENV, HostPolicy};
pub use path::{ArtifactPath, INVALID_PATH_MESSAGE};

/// A parsed storage location or model reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local file or directory.
    Local(PathBuf),
    /// An object key (or key prefix) in an S3 bucket; the root key is the bucket itself.
    S3 { bucket: String, key: ArtifactPath },
    /// A path behind a tracking server's artifact proxy. `authority` is the `host:port` the
    /// URI names; `None` means the server configured (or, on the server, this one).
    MlflowArtifacts {
        authority: Option<String>,
        path: ArtifactPath,
    },
    /// An `http(s)` URL, kept as written.
    Http(String),
    /// A path inside a run's artifacts.
    Run { run_id: String, path: ArtifactPath },
    /// What follows `models:/`: a registered model reference or a logged model id.
    Models(String),
}

/// Why a text is not a [`Location`]; its `Display` is the reason, for callers to put in their
/// own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationError {
    Empty,
    /// A scheme no location uses, as written.
    UnsupportedScheme(String),
    /// `s3:` without `//`.
    S3Shape,
    /// A bucket that is missing or could not be a bucket name.
    S3Bucket,
    /// A query string or fragment in an `s3://` URI.
    S3QueryOrFragment,
    /// An object key that is not a plain relative path.
    S3Key,
    /// A `file://` URI naming another host.
    FileHost,
    /// A `file:` URI with no path, or one that does not decode.
    FilePath,
    RunsShape,
    RunIdMissing,
    RunIdMalformed,
    ModelsShape,
    /// A path inside a bucket, proxy or run that could leave it, or is not a plain path.
    UnsafePath,
}

/// The shape a `models:/` URI must have.
pub const MODELS_URI_SHAPE: &str = "models URIs look like models:/<name>/<version>, \
                                    models:/<name>/<stage>, models:/<name>@<alias> or \
                                    models:/m-<model id>";

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationError::Empty => f.write_str("the location is empty"),
            LocationError::UnsupportedScheme(scheme) => write!(
                f,
                "the scheme '{scheme}' is not supported (use runs:/, models:/, \
                 mlflow-artifacts:/, s3://, http(s):// or a local path)"
            ),
            LocationError::S3Shape => f.write_str("expected s3://bucket/optional/prefix"),
            LocationError::S3Bucket => f.write_str("an s3:// URI needs a bucket"),
            LocationError::S3QueryOrFragment => {
                f.write_str("query strings and fragments are not supported")
            }
            LocationError::S3Key => f.write_str("the key is not a plain relative path"),
            LocationError::FileHost => f.write_str("file URIs must name a local path"),
            LocationError::FilePath => f.write_str("a file: URI needs a path"),
            LocationError::RunsShape => {
                f.write_str("runs URIs look like runs:/<run_id>/<path inside the run>")
            }
            LocationError::RunIdMissing => f.write_str("the run id is missing"),
            LocationError::RunIdMalformed => f.write_str("the run id is malformed"),
            LocationError::ModelsShape => f.write_str(MODELS_URI_SHAPE),
            LocationError::UnsafePath => f.write_str("the path is not a plain relative path"),
        }
    }
}

impl std::error::Error for LocationError {}

/// The scheme of `uri` as written and the text after its `:`; `None` for a plain path. One
/// letter before `:` is a Windows drive, not a scheme.
pub fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let is_scheme = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then_some((scheme, rest))
}

impl Location {
    /// Reads a location. The text is taken as given (callers trim user input first).
    pub fn parse(uri: &str) -> Result<Location, LocationError> {
        if uri.trim().is_empty() {
            return Err(LocationError::Empty);
        }
        let Some((scheme, rest)) = split_scheme(uri) else {
            return Ok(Location::Local(PathBuf::from(uri)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => parse_file(rest),
            "s3" => parse_s3(rest),
            "mlflow-artifacts" => parse_proxied(rest),
            "http" | "https" => Ok(Location::Http(uri.to_owned())),
            "runs" => parse_runs(rest),
            "models" => {
                let reference = models_reference(uri).ok_or(LocationError::ModelsShape)?;
                Ok(Location::Models(reference.to_owned()))
            }
            _ => Err(LocationError::UnsupportedScheme(scheme.to_owned())),
        }
    }

    /// The path inside this server's artifact proxy that a location names: an
    /// `mlflow-artifacts:` URI (whatever host it names: the one the client went through), or
    /// an `http(s)` URL of the proxy's artifact route.
    pub fn proxied_path(&self) -> Option<Result<ArtifactPath, LocationError>> {
        match self {
            Location::MlflowArtifacts { path, .. } => Some(Ok(path.clone())),
            Location::Http(url) => {
                let (_, rest) = split_scheme(url)?;
                let rest = rest.split(['?', '#']).next().unwrap_or_default();
                let start = rest.find(PROXY_ROUTE_ANCHOR)? + PROXY_ROUTE_ANCHOR.len();
                Some(relative(&rest[start..]))
            }
            _ => None,
        }
    }

    /// Whether resolving this location needs a tracking server.
    pub fn needs_tracking_server(&self) -> bool {
        matches!(
            self,
            Location::Run { .. } | Location::Models(_) | Location::MlflowArtifacts { .. }
        )
    }
}

/// What follows `models:/` in a `models:/…` URI, borrowed from it.
pub fn models_reference(uri: &str) -> Option<&str> {
    let (scheme, rest) = split_scheme(uri)?;
    if !scheme.eq_ignore_ascii_case("models") {
        return None;
    }
    rest.strip_prefix('/')
}

/// A logged model reference (`m-<id>`, optionally followed by a path inside the model's
/// artifacts), as `models:/m-<id>[/<path>]` carries it.
pub fn logged_model_reference(reference: &str) -> Option<(&str, &str)> {
    reference
        .starts_with("m-")
        .then(|| reference.split_once('/').unwrap_or((reference, "")))
}

/// Where a proxied location's path starts in an `http(s)` artifact URL.
const PROXY_ROUTE_ANCHOR: &str = "/api/2.0/mlflow-artifacts/artifacts/";

/// A path below a root, read leniently about the `/`s around it as every MLflow client writes
/// them, and strictly about everything else.
fn relative(path: &str) -> Result<ArtifactPath, LocationError> {
    ArtifactPath::parse(path.trim_matches('/')).map_err(|_| LocationError::UnsafePath)
}

fn parse_file(rest: &str) -> Result<Location, LocationError> {
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => match authority_and_path.split_once('/') {
            Some(("" | "localhost", path)) => format!("/{path}"),
            Some(_) => return Err(LocationError::FileHost),
            None if authority_and_path.is_empty() || authority_and_path == "localhost" => {
                return Err(LocationError::FilePath);
            }
            None => return Err(LocationError::FileHost),
        },
        None => rest.to_owned(),
    };
    let decoded = percent_encoding::percent_decode_str(&path)
        .decode_utf8()
        .map_err(|_| LocationError::FilePath)?;
    if decoded.is_empty() {
        return Err(LocationError::FilePath);
    }
    Ok(Location::Local(PathBuf::from(decoded.into_owned())))
}

fn parse_s3(rest: &str) -> Result<Location, LocationError> {
    let rest = rest.strip_prefix("//").ok_or(LocationError::S3Shape)?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = !bucket.is_empty()
        && !bucket.contains([':', '@', '?', '#'])
        && !bucket.chars().any(|c| c.is_whitespace() || c.is_control());
    if !bucket_ok {
        return Err(LocationError::S3Bucket);
    }
    if key.contains(['?', '#']) {
        return Err(LocationError::S3QueryOrFragment);
    }
    Ok(Location::S3 {
        bucket: bucket.to_owned(),
        key: relative(key).map_err(|_| LocationError::S3Key)?,
    })
}

fn parse_proxied(rest: &str) -> Result<Location, LocationError> {
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_once('/').unwrap_or((after, ""));
            if !is_host_and_port(authority) {
                return Err(LocationError::UnsafePath);
            }
            ((!authority.is_empty()).then(|| authority.to_owned()), path)
        }
        None => (None, rest),
    };
    Ok(Location::MlflowArtifacts {
        authority,
        path: relative(path)?,
    })
}

/// A `host[:port]` (or empty), nothing a later reader could take for a path.
fn is_host_and_port(authority: &str) -> bool {
    authority
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '[' | ']' | '@'))
        && (authority.is_empty() || !authority.chars().all(|c| c == '.'))
}

fn parse_runs(rest: &str) -> Result<Location, LocationError> {
    // `runs://id/path` is a common slip; MLflow reads the id the same way.
    let rest = rest
        .strip_prefix('/')
        .ok_or(LocationError::RunsShape)?
        .trim_start_matches('/');
    let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
    if run_id.is_empty() {
        return Err(LocationError::RunIdMissing);
    }
    crate::ids::validate_run_id(run_id).map_err(|_| LocationError::RunIdMalformed)?;
    Ok(Location::Run {
        run_id: run_id.to_owned(),
        path: relative(path)?,
    })
}

/// `prefix` followed by `/path` unless the path is the root.
fn with_path(
    f: &mut fmt::Formatter<'_>,
    prefix: fmt::Arguments<'_>,
    path: &ArtifactPath,
) -> fmt::Result {
    f.write_fmt(prefix)?;
    if path.is_root() {
        Ok(())
    } else {
        write!(f, "/{path}")
    }
}

impl fmt::Display for Location {
    /// The text [`Location::parse`] reads back to the same location.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => {
                let text = path.to_string_lossy();
                if split_scheme(&text).is_none() {
                    f.write_str(&text)
                } else {
                    // Plain, this would read as a URI; as a file URI it reads as this path.
                    write!(f, "file:{}", text.replace('%', "%25"))
                }
            }
            Location::S3 { bucket, key } => with_path(f, format_args!("s3://{bucket}"), key),
            Location::MlflowArtifacts {
                authority: Some(authority),
                path,
            } => write!(f, "mlflow-artifacts://{authority}/{path}"),
            Location::MlflowArtifacts {
                authority: None,
                path,
            } => write!(f, "mlflow-artifacts:/{path}"),
            Location::Http(url) => f.write_str(url),
            Location::Run { run_id, path } => with_path(f, format_args!("runs:/{run_id}"), path),
            Location::Models(reference) => write!(f, "models:/{reference}"),
        }
    }
}

/// An experiment's artifact location as MLflow stores it: a relative local path (plain or
/// `file:rel`) is taken relative to `cwd`, the server's working directory, and kept in the
/// form it came in (a path, or a `file://` URI); anything else is returned as written.
pub fn absolute_local_location(uri: &str, cwd: &Path) -> String {
    let Ok(Location::Local(path)) = Location::parse(uri) else {
        return uri.to_owned();
    };
    if path.is_absolute() {
        return uri.to_owned();
    }
    let mut absolute = cwd.to_path_buf();
    absolute.extend(
        path.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir)),
    );
    let absolute = absolute.to_string_lossy().into_owned();
    if split_scheme(uri).is_some() {
        format!("file://{absolute}")
    } else {
        absolute
    }
}

/// A URI split as MLflow splits model version sources: the scheme (lower case, empty for a
/// plain path), the authority (lower case) and the path's segments, each percent-decoded
/// until it stops changing. Query and fragment are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriParts {
    pub scheme: String,
    pub authority: String,
    pub segments: Vec<String>,
}

/// MLflow decodes at most this many times.
const MAX_UNQUOTE_ROUNDS: usize = 10;

impl UriParts {
    pub fn split(uri: &str) -> UriParts {
        let (scheme, rest) = match split_scheme(uri) {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => (String::new(), uri),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => match after.split_once('/') {
                Some((authority, path)) => (authority.to_ascii_lowercase(), path),
                None => (after.to_ascii_lowercase(), ""),
            },
            None => (String::new(), rest),
        };
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(fully_unquote)
            .collect();
        UriParts {
            scheme,
            authority,
            segments,
        }
    }

    /// A plain path or a `file:` URI.
    pub fn is_local(&self) -> bool {
        self.scheme.is_empty() || self.scheme == "file"
    }

    /// Whether this names `root` or something below it (same scheme and authority, and the
    /// root's segments first). An empty root contains nothing.
    pub fn is_within(&self, root: &UriParts) -> bool {
        self.scheme == root.scheme
            && self.authority == root.authority
            && !root.segments.is_empty()
            && self.segments.starts_with(&root.segments)
    }

    /// An `mlflow-artifacts:` URI, or an `http(s)` URL of a proxy's artifact route.
    pub fn is_proxied(&self) -> bool {
        if self.scheme == "mlflow-artifacts" {
            return true;
        }
        let route = ["api", "2.0", "mlflow-artifacts", "artifacts"];
        (self.scheme == "http" || self.scheme == "https")
            && self.segments.windows(route.len()).any(|w| w == route)
    }
}

/// `value` percent-decoded until it stops changing (invalid UTF-8 replaced), as MLflow reads
/// sources before looking for relative references.
pub fn fully_unquote(value: &str) -> String {
    let mut current = value.to_owned();
    for _ in 0..MAX_UNQUOTE_ROUNDS {
        let next = percent_encoding::percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests;
