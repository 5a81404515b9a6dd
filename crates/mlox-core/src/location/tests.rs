use super::*;
use proptest::prelude::*;

fn parse(uri: &str) -> Location {
    Location::parse(uri).unwrap_or_else(|e| panic!("{uri:?} refused: {e}"))
}

fn path(raw: &str) -> ArtifactPath {
    ArtifactPath::parse(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
}

fn local(raw: &str) -> Location {
    Location::Local(PathBuf::from(raw))
}

#[test]
fn local_paths_and_file_uris() {
    for (uri, expected) in [
        ("./mlartifacts", local("./mlartifacts")),
        ("/srv/artifacts", local("/srv/artifacts")),
        ("relative/dir", local("relative/dir")),
        ("C:\\artifacts", local("C:\\artifacts")),
        ("../models/m", local("../models/m")),
        ("file:///srv/my%20artifacts", local("/srv/my artifacts")),
        ("file://localhost/srv/a", local("/srv/a")),
        ("FILE:/srv/a", local("/srv/a")),
        ("file:rel/dir", local("rel/dir")),
    ] {
        assert_eq!(parse(uri), expected, "{uri}");
    }
    for (uri, error) in [
        ("file://host/p", LocationError::FileHost),
        ("file://", LocationError::FilePath),
        ("file:", LocationError::FilePath),
        ("file:///%ff", LocationError::FilePath),
        ("", LocationError::Empty),
        ("  ", LocationError::Empty),
    ] {
        assert_eq!(Location::parse(uri), Err(error), "{uri}");
    }
}

#[test]
fn buckets_and_keys() {
    assert_eq!(
        parse("s3://project1/0/84eb95/artifacts/"),
        Location::S3 {
            bucket: "project1".into(),
            key: path("0/84eb95/artifacts")
        }
    );
    assert_eq!(
        parse("s3://b"),
        Location::S3 {
            bucket: "b".into(),
            key: ArtifactPath::root()
        }
    );
    for (uri, error) in [
        ("s3://", LocationError::S3Bucket),
        ("s3:///prefix", LocationError::S3Bucket),
        ("s3://user@b/p", LocationError::S3Bucket),
        ("s3://b:9000/p", LocationError::S3Bucket),
        ("s3:bucket", LocationError::S3Shape),
        ("s3://b/p?x=1", LocationError::S3QueryOrFragment),
        ("s3://b/p#f", LocationError::S3QueryOrFragment),
        ("s3://b/a//c", LocationError::S3Key),
        ("s3://b/a/../c", LocationError::S3Key),
        ("s3://b/a/%2e%2e/c", LocationError::S3Key),
    ] {
        assert_eq!(Location::parse(uri), Err(error), "{uri}");
    }
}

#[test]
fn proxied_locations_name_a_path_inside_the_proxy() {
    for (uri, expected) in [
        ("mlflow-artifacts:/1/abc/artifacts", Some("1/abc/artifacts")),
        ("mlflow-artifacts:", Some("")),
        ("mlflow-artifacts:/", Some("")),
        ("MLflow-Artifacts:/1", Some("1")),
        ("mlflow-artifacts://host:5000/1/abc", Some("1/abc")),
        ("mlflow-artifacts://host", Some("")),
        ("mlflow-artifacts:///1/x?q#f", Some("1/x")),
        (
            "https://h/p/api/2.0/mlflow-artifacts/artifacts/1/abc",
            Some("1/abc"),
        ),
        ("https://h/elsewhere/1/abc", None),
        ("s3://bucket/1/abc", None),
        ("/srv/mlruns/1/abc", None),
        ("file:///srv/mlruns", None),
    ] {
        let proxied = parse(uri)
            .proxied_path()
            .map(|p| p.expect("a safe path").to_string());
        assert_eq!(proxied.as_deref(), expected, "{uri}");
    }
    assert_eq!(
        parse("mlflow-artifacts://tracking:5000/1/x"),
        Location::MlflowArtifacts {
            authority: Some("tracking:5000".into()),
            path: path("1/x")
        }
    );
    assert_eq!(
        Location::parse("mlflow-artifacts:/1/..%2f..%2fx"),
        Err(LocationError::UnsafePath)
    );
    assert!(matches!(
        parse("https://h/api/2.0/mlflow-artifacts/artifacts/%2e%2e/x").proxied_path(),
        Some(Err(LocationError::UnsafePath))
    ));
}

#[test]
fn run_and_model_references() {
    assert_eq!(
        parse("runs:/0123abcd/models/inner/"),
        Location::Run {
            run_id: "0123abcd".into(),
            path: path("models/inner")
        }
    );
    assert_eq!(
        parse("runs://0123abcd"),
        Location::Run {
            run_id: "0123abcd".into(),
            path: ArtifactPath::root()
        }
    );
    assert_eq!(Location::parse("runs:"), Err(LocationError::RunsShape));
    assert_eq!(Location::parse("runs:/"), Err(LocationError::RunIdMissing));
    assert_eq!(
        Location::parse("runs:/bad id/m"),
        Err(LocationError::RunIdMalformed)
    );
    assert_eq!(
        Location::parse("runs:/abc/../../x"),
        Err(LocationError::UnsafePath)
    );
    assert_eq!(
        parse("models:/wine@champion"),
        Location::Models("wine@champion".into())
    );
    assert_eq!(
        Location::parse("models:wine"),
        Err(LocationError::ModelsShape)
    );
    assert_eq!(
        logged_model_reference("m-0123/sub/dir"),
        Some(("m-0123", "sub/dir"))
    );
    assert_eq!(logged_model_reference("m-0123"), Some(("m-0123", "")));
    assert_eq!(logged_model_reference("wine/1"), None);
}

#[test]
fn other_schemes_are_refused_by_name() {
    for (uri, scheme) in [
        ("gs://b/p", "gs"),
        ("hdfs://nn/p", "hdfs"),
        ("Wasbs:x", "Wasbs"),
    ] {
        assert_eq!(
            Location::parse(uri),
            Err(LocationError::UnsupportedScheme(scheme.into())),
            "{uri}"
        );
    }
    assert!(
        LocationError::UnsupportedScheme("gs".into())
            .to_string()
            .contains("'gs' is not supported")
    );
}

#[test]
fn sources_split_like_mlflow() {
    let parts = UriParts::split("mlflow-artifacts:/1/x%252e%252e/y");
    assert_eq!(parts.segments, vec!["1", "x..", "y"]);
    let within =
        |source: &str, root: &str| UriParts::split(source).is_within(&UriParts::split(root));
    assert!(within(
        "mlflow-artifacts:/1/abc/artifacts/model",
        "mlflow-artifacts:/1/abc/artifacts"
    ));
    assert!(!within(
        "mlflow-artifacts:/1/other/artifacts",
        "mlflow-artifacts:/1/abc/artifacts"
    ));
    assert!(!within("s3://b/x", "s3://b"));
    assert!(UriParts::split("/tmp/model").is_local());
    assert!(UriParts::split("file:///tmp/m").is_local());
    assert!(!UriParts::split("s3://b/k").is_local());
    assert!(UriParts::split("https://h/api/2.0/mlflow-artifacts/artifacts/1").is_proxied());
    assert!(!UriParts::split("https://h/api/2.0/other/1").is_proxied());
}

/// Pieces that traversal attacks are made of, and ordinary text around them.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "x.txt", ".", "..", "/", "//", "\\", "%", "%2e", "%2E", "%2f", "%2F", "%5c",
        "%25", "%252e", "%252f", "%00", "\0", "\n", ":", "C:", "file:", "#", "?", "%23", "é", " ",
        "~", "%c0%ae", "..%2f", "%2e%2e", "@",
    ])
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "s3://b/",
        "s3://b",
        "mlflow-artifacts:/",
        "mlflow-artifacts://host:5000/",
        "mlflow-artifacts:",
        "runs:/0a1b/",
        "https://h/api/2.0/mlflow-artifacts/artifacts/",
    ])
}

/// Where a path below a root starts, for each kind of location that has one.
fn rooted_prefix() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "s3://b/",
        "mlflow-artifacts:",
        "mlflow-artifacts:/",
        "mlflow-artifacts://host:5000/",
        "runs:/0a1b/",
        "https://h/api/2.0/mlflow-artifacts/artifacts/",
    ])
}

/// Ordinary text around an attack; no `?` or `#`, which would end the path before it.
fn path_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "x.txt", ".", "/", "%", "%2e", "%2f", "%25", ":", "C:", "é", " ", "~", "@", "%23",
    ])
}

/// A traversal, an absolute path or a control character, in any of its encodings.
fn attack() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "..",
        "%2e%2e",
        "%2E%2E",
        "%2E%2e",
        ".%2e",
        "%252e%252e",
        "%25252e%25252e",
        "%2e%2e%2f",
        "..%2f..",
        "..%2fx",
        "..%5cx",
        "%2e%2e%5cx",
        "..\\x",
        "\\..",
        "%5c..",
        "%5cetc",
        "%2fetc",
        "%252fetc",
        "c:%5cx",
        "a\0b",
        "%00",
        "%2500",
        "a\nb",
        "%0a",
        "\u{7f}",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parsing_never_panics(s in "\\PC{0,80}") {
        if let Ok(loc) = Location::parse(&s) {
            let _ = loc.proxied_path();
            let _ = loc.to_string();
        }
        let _ = UriParts::split(&s);
    }

    #[test]
    fn parsing_never_panics_on_uri_shaped_text(
        prefix in scheme(),
        pieces in prop::collection::vec(piece(), 0..12),
    ) {
        let _ = Location::parse(&format!("{prefix}{}", pieces.concat()));
    }

    #[test]
    fn rendered_locations_parse_back_to_themselves(
        prefix in scheme(),
        pieces in prop::collection::vec(piece(), 0..12),
    ) {
        let text = format!("{prefix}{}", pieces.concat());
        if let Ok(loc) = Location::parse(&text) {
            prop_assert_eq!(Location::parse(&loc.to_string()), Ok(loc.clone()), "{}", text);
        }
    }

    #[test]
    fn generated_locations_round_trip(
        loc in prop_oneof![
            ("[a-z][a-z0-9.-]{2,20}", "([A-Za-z0-9_ .-]{1,8}/){0,3}[A-Za-z0-9_-]{1,8}")
                .prop_filter_map("a safe key", |(bucket, key)| {
                    ArtifactPath::parse(&key).ok().map(|key| Location::S3 { bucket, key })
                }),
            (prop::option::of("[a-z]{1,8}(:[0-9]{2,5})?"), "([0-9]{1,3}/){0,3}[a-z%]{0,8}")
                .prop_filter_map("a safe path", |(authority, p)| {
                    ArtifactPath::parse(&p).ok().map(|path| Location::MlflowArtifacts { authority, path })
                }),
            ("[a-f0-9]{8,32}", "([a-z]{1,5}/){0,3}")
                .prop_map(|(run_id, p)| Location::Run { run_id, path: path(p.trim_end_matches('/')) }),
            "[a-zA-Z][a-zA-Z0-9 _.-]{0,10}(/[1-9][0-9]{0,3}|@[a-z]{1,8})".prop_map(Location::Models),
            "https?://[a-z]{1,8}(/[a-z0-9]{1,5}){0,3}".prop_map(Location::Http),
            "(/|\\./)?([a-zA-Z0-9_ %:.-]{1,8}/){0,3}[a-zA-Z0-9_%:.-]{1,8}"
                .prop_map(|p| Location::Local(PathBuf::from(p))),
        ]
    ) {
        prop_assert_eq!(Location::parse(&loc.to_string()), Ok(loc.clone()), "{}", loc);
    }

    #[test]
    fn every_traversal_form_is_refused(
        prefix in rooted_prefix(),
        before in prop::collection::vec(path_piece(), 0..4),
        after in prop::collection::vec(path_piece(), 0..4),
        leading in any::<bool>(),
        attack in attack(),
    ) {
        let before = if leading { String::new() } else { format!("{}/", before.concat()) };
        let text = format!("{prefix}{before}{attack}/{}", after.concat());
        let refused = match Location::parse(&text) {
            Err(_) => true,
            Ok(loc @ Location::Http(_)) => matches!(loc.proxied_path(), Some(Err(_))),
            Ok(_) => false,
        };
        prop_assert!(refused, "{:?} accepted", text);
    }
}

#[test]
fn relative_local_locations_are_made_absolute_against_the_working_directory() {
    let cwd = Path::new("/srv/mlflow");
    assert_eq!(
        absolute_local_location("my_location", cwd),
        "/srv/mlflow/my_location"
    );
    assert_eq!(absolute_local_location("./a/b", cwd), "/srv/mlflow/a/b");
    assert_eq!(
        absolute_local_location("file:rel", cwd),
        "file:///srv/mlflow/rel"
    );
    for kept in [
        "/abs/dir",
        "file:///abs/dir",
        "s3://bucket/key",
        "mlflow-artifacts:/x",
    ] {
        assert_eq!(absolute_local_location(kept, cwd), kept);
    }
}
