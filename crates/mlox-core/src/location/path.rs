//! [`ArtifactPath`]: the only way a client-supplied artifact location reaches the filesystem.
//!
//! A value of this type is a relative, `/`-separated path whose every segment is an ordinary
//! file name, so joining it to an artifact root can only name something inside that root
//! (lexically; links are the local repository's job, in mlox-artifacts). Parsing is stricter
//! than MLflow's own check: MLflow decodes the path until it stops changing and then refuses
//! `..` segments, `\`, `#` and absolute or drive-letter paths; we refuse the same on the raw
//! text *and* on every decoding layer, and additionally refuse `.` and empty segments, control
//! characters and over-long names, because each of those is either an escape attempt or a name
//! the filesystem would reject with an error that is not the client's to see.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};
use percent_encoding::percent_decode_str;

/// The message MLflow answers a refused path with; clients and tests key on it.
pub const INVALID_PATH_MESSAGE: &str = "Invalid path";

/// Longest single segment accepted; longer names fail on common filesystems anyway.
const MAX_SEGMENT_BYTES: usize = 255;
/// Longest whole path accepted (Linux `PATH_MAX`), so the OS never sees a name it refuses.
const MAX_PATH_BYTES: usize = 4096;
/// MLflow gives up decoding after this many rounds; a path still changing then is hostile.
const MAX_DECODE_ROUNDS: usize = 10;

/// A validated artifact location relative to an artifact root; empty means the root itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ArtifactPath {
    /// Segments joined by `/`, no leading or trailing separator.
    joined: String,
}

impl ArtifactPath {
    /// The artifact root.
    pub fn root() -> Self {
        ArtifactPath::default()
    }

    /// Validates a client-supplied path as received after the transport's own single
    /// percent-decoding (URL path or query value). One trailing `/` is tolerated because
    /// MLflow's client produces it when it addresses a directory; the empty string is the root.
    pub fn parse(raw: &str) -> Result<Self> {
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        if raw.len() > MAX_PATH_BYTES {
            return Err(invalid());
        }
        if trimmed.is_empty() {
            // A lone "/" is absolute, not "the root with a trailing slash".
            return if raw.is_empty() {
                Ok(ArtifactPath::root())
            } else {
                Err(invalid())
            };
        }
        // The stored name is the text as received; every further decoding of it must be just
        // as harmless, or some later layer (a proxy, a client, a future backend) could turn it
        // into an escape.
        let mut layer = trimmed.to_owned();
        check_layer(&layer)?;
        for _ in 0..MAX_DECODE_ROUNDS {
            let decoded = match percent_decode_str(&layer).decode_utf8() {
                Ok(decoded) => decoded.into_owned(),
                Err(_) => return Err(invalid()),
            };
            if decoded == layer {
                return Ok(ArtifactPath {
                    joined: trimmed.to_owned(),
                });
            }
            check_layer(&decoded)?;
            layer = decoded;
        }
        Err(invalid())
    }

    /// Whether this is the artifact root.
    pub fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    /// The path as `/`-separated text, empty for the root.
    pub fn as_str(&self) -> &str {
        &self.joined
    }

    /// The segments from the root down.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.joined.split('/').filter(|s| !s.is_empty())
    }

    /// The last segment, `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.segments().next_back()
    }

    /// The containing directory, `None` for the root.
    pub fn parent(&self) -> Option<ArtifactPath> {
        if self.is_root() {
            return None;
        }
        let joined = match self.joined.rsplit_once('/') {
            Some((head, _)) => head.to_owned(),
            None => String::new(),
        };
        Some(ArtifactPath { joined })
    }

    /// This path extended by one client-supplied file name, validated like any segment.
    pub fn join_name(&self, name: &str) -> Result<ArtifactPath> {
        if name.is_empty() || name.contains('/') {
            return Err(invalid());
        }
        let joined = if self.is_root() {
            name.to_owned()
        } else {
            format!("{}/{}", self.joined, name)
        };
        ArtifactPath::parse(&joined)
    }

    /// This path under `root`. Purely lexical: the result cannot leave `root` by `..` or an
    /// absolute component, but links inside `root` are for the caller to check.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut out = root.to_path_buf();
        for segment in self.segments() {
            out.push(segment);
        }
        out
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined)
    }
}

impl fmt::Debug for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactPath({:?})", self.joined)
    }
}

impl std::str::FromStr for ArtifactPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ArtifactPath::parse(s)
    }
}

fn invalid() -> Error {
    Error::invalid(INVALID_PATH_MESSAGE)
}

/// One decoding layer of a path must be a plain relative path of ordinary names.
fn check_layer(text: &str) -> Result<()> {
    if text.is_empty() || text.len() > MAX_PATH_BYTES {
        return Err(invalid());
    }
    // `\` is a separator on Windows and in many URL normalisers; `#` is refused by MLflow
    // because a URL parser would cut the path there.
    if text
        .chars()
        .any(|c| c == '\\' || c == '#' || c.is_control())
    {
        return Err(invalid());
    }
    if text.starts_with('/') {
        return Err(invalid());
    }
    let lower = text.to_ascii_lowercase();
    // MLflow turns `file:` URIs into local paths before checking; we never want one.
    if lower.starts_with("file:") {
        return Err(invalid());
    }
    let mut segments = text.split('/');
    if let Some(first) = segments.clone().next() {
        // `C:`, `C:x`: drive-qualified names, absolute or drive-relative on Windows.
        let bytes = first.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(invalid());
        }
    }
    segments.try_for_each(|segment| {
        if segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.len() > MAX_SEGMENT_BYTES
        {
            Err(invalid())
        } else {
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests;
