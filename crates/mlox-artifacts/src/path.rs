//! [`ArtifactPath`]: the only way a client-supplied artifact location reaches the filesystem.
//!
//! A value of this type is a relative, `/`-separated path whose every segment is an ordinary
//! file name, so joining it to an artifact root can only name something inside that root
//! (lexically; links are the repository's job, see `LocalArtifactRepo`). Parsing is stricter
//! than MLflow's own check: MLflow decodes the path until it stops changing and then refuses
//! `..` segments, `\`, `#` and absolute or drive-letter paths; we refuse the same on the raw
//! text *and* on every decoding layer, and additionally refuse `.` and empty segments, control
//! characters and over-long names, because each of those is either an escape attempt or a name
//! the filesystem would reject with an error that is not the client's to see.

use std::fmt;
use std::path::{Path, PathBuf};

use mlox_core::{Error, Result};
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    fn ok(raw: &str) -> ArtifactPath {
        ArtifactPath::parse(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
    }

    fn refused(raw: &str) {
        let err = ArtifactPath::parse(raw).expect_err(raw);
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue, "{raw:?}");
        assert_eq!(err.message, INVALID_PATH_MESSAGE);
    }

    #[test]
    fn accepts_ordinary_paths() {
        for raw in [
            "a",
            "a.txt",
            "1/abc/artifacts/model/MLmodel",
            "dir/sub dir/file name.json",
            "..a",
            "a..",
            "a..b/c",
            ".hidden",
            "...",
            "name with ümlaut/日本語.txt",
            "metrics:v1",
            "ab:c/d",
            "~",
            "a%b",
            "100%",
        ] {
            let path = ok(raw);
            assert_eq!(path.as_str(), raw);
        }
    }

    #[test]
    fn empty_is_root_and_trailing_slash_is_dropped() {
        assert!(ok("").is_root());
        assert_eq!(ok("a/b/").as_str(), "a/b");
        assert_eq!(ok("a/b/").file_name(), Some("b"));
    }

    #[test]
    fn refuses_traversal_and_odd_forms() {
        for raw in [
            "..",
            "../x",
            "a/../b",
            "a/..",
            "a/../../etc/passwd",
            ".",
            "./a",
            "a/./b",
            "a//b",
            "//a",
            "/",
            "a//",
            "/etc/passwd",
            "\\etc\\passwd",
            "a\\..\\b",
            "a\\b",
            "C:\\Windows",
            "C:/Windows",
            "c:x",
            "a:b/c",
            "file:///etc/passwd",
            "FILE:/etc/passwd",
            "a\0b",
            "a\nb",
            "a\x7fb",
            "a#b",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn refuses_encoded_traversal_at_every_layer() {
        for raw in [
            "%2e%2e",
            "%2E%2E/x",
            "a/%2e%2e/b",
            "..%2f",
            "..%2Fetc",
            "%2e%2e%2fetc%2fpasswd",
            "%252e%252e",
            "%252e%252e%252f",
            "%25252e%25252e",
            "a/%2e",
            "%2fetc",
            "%5c",
            "a%5c..%5cb",
            "%00",
            "a%0ab",
            "%23",
            "a%2f%2fb",
            "%2e%2e%5c",
            "%C0%AE%C0%AE",
            "%ff",
            "C%3a%5cx",
            "file%3a%2f%2f%2fetc",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn refuses_paths_that_never_stop_decoding() {
        let mut raw = String::from("%2e");
        for _ in 0..12 {
            raw = raw.replace('%', "%25");
        }
        refused(&raw);
    }

    #[test]
    fn refuses_overlong_names() {
        refused(&"a".repeat(256));
        ok(&"a".repeat(255));
        refused(&vec!["abcdefgh"; 600].join("/"));
    }

    #[test]
    fn parent_join_and_under() {
        let path = ok("a/b/c.txt");
        assert_eq!(path.parent(), Some(ok("a/b")));
        assert_eq!(ok("a").parent(), Some(ArtifactPath::root()));
        assert_eq!(ArtifactPath::root().parent(), None);
        assert_eq!(ok("a/b").join_name("c.txt").unwrap(), path);
        assert_eq!(
            ArtifactPath::root().join_name("c.txt").unwrap(),
            ok("c.txt")
        );
        for bad in ["", "..", "a/b", "%2e%2e", "."] {
            assert!(ok("a").join_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            path.under(Path::new("/root")),
            PathBuf::from("/root/a/b/c.txt")
        );
        assert_eq!(
            ArtifactPath::root().under(Path::new("/root")),
            PathBuf::from("/root")
        );
    }

    /// Every decoding of `raw` (as far as MLflow would go), including `raw` itself.
    fn layers(raw: &str) -> Vec<String> {
        let mut out = vec![raw.to_owned()];
        let mut cur = raw.to_owned();
        for _ in 0..MAX_DECODE_ROUNDS + 2 {
            let next = percent_decode_str(&cur).decode_utf8_lossy().into_owned();
            if next == cur {
                break;
            }
            out.push(next.clone());
            cur = next;
        }
        out
    }

    fn has_traversal(text: &str) -> bool {
        text.starts_with('/')
            || text.contains('\\')
            || text.contains('\0')
            || text.split('/').any(|s| s == "..")
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a", "b", "x.txt", ".", "..", "/", "//", "\\", "%", "%2e", "%2E", "%2f", "%2F", "%5c",
            "%25", "%252e", "%252f", "%00", "\0", "\n", ":", "C:", "file:", "#", "%23", "é", " ",
            "~", "%c0%ae", "..%2f", "%2e%2e",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn accepted_paths_stay_under_the_root(pieces in prop::collection::vec(piece(), 0..12)) {
            let raw: String = pieces.concat();
            if let Ok(path) = ArtifactPath::parse(&raw) {
                let root = Path::new("/srv/artifacts");
                let full = path.under(root);
                prop_assert!(full.starts_with(root));
                let rel = full.strip_prefix(root).unwrap();
                for component in rel.components() {
                    prop_assert!(matches!(component, Component::Normal(_)), "{raw:?} -> {full:?}");
                }
                for layer in layers(&raw) {
                    prop_assert!(!has_traversal(&layer), "{raw:?} accepted, layer {layer:?}");
                }
            }
        }

        #[test]
        fn any_traversal_is_refused(
            before in prop::collection::vec(piece(), 0..5),
            after in prop::collection::vec(piece(), 0..5),
            leading in any::<bool>(),
            attack in prop::sample::select(vec![
                "..", "%2e%2e", "%2E%2e", ".%2e", "%252e%252e", "%25252e%25252e", "..%2f..",
                "..%2fx", "%2e%2e%5cx", "..\\x", "\\..", "%5c..", "%2f..",
            ]),
        ) {
            // The attack is a whole segment, so the pieces around it cannot merge into it.
            let raw = if leading {
                format!("{attack}/{}", after.concat())
            } else {
                format!("{}/{attack}/{}", before.concat(), after.concat())
            };
            prop_assert!(ArtifactPath::parse(&raw).is_err(), "{raw:?} accepted");
        }

        #[test]
        fn ordinary_names_round_trip(names in prop::collection::vec("[A-Za-z0-9_ .-]{1,20}", 1..6)) {
            prop_assume!(names.iter().all(|n| n != "." && n != ".."));
            let raw = names.join("/");
            let path = ArtifactPath::parse(&raw).unwrap();
            prop_assert_eq!(path.as_str(), raw.as_str());
            prop_assert_eq!(path.segments().count(), names.len());
        }
    }
}
