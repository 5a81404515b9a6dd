use super::*;
use proptest::prelude::*;
use std::path::Component;

fn ok(raw: &str) -> ArtifactPath {
    ArtifactPath::parse(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
}

fn refused(raw: &str) {
    let err = ArtifactPath::parse(raw).expect_err(raw);
    assert_eq!(err.code, crate::Code::InvalidParameterValue, "{raw:?}");
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
        "%25", "%252e", "%252f", "%00", "\0", "\n", ":", "C:", "file:", "#", "%23", "é", " ", "~",
        "%c0%ae", "..%2f", "%2e%2e",
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
