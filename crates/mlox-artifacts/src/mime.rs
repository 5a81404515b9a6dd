//! The `Content-Type` an artifact is served with, chosen from its name as MLflow does: the
//! text formats MLflow previews (logs, configs, `MLmodel`, …) are `text/plain` so a browser
//! shows them instead of guessing, a short table covers what runs commonly log, and anything
//! else is `application/octet-stream`.

/// Extensions (or, for extension-less names, whole names) MLflow serves as `text/plain`.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "log",
    "err",
    "cfg",
    "conf",
    "cnf",
    "cf",
    "ini",
    "properties",
    "prop",
    "hocon",
    "toml",
    "yaml",
    "yml",
    "xml",
    "json",
    "js",
    "py",
    "py3",
    "csv",
    "tsv",
    "md",
    "rst",
    "ipynb",
    "MLmodel",
    // MLflow's own spelling of the project file's name (`MLPROJECT_FILE_NAME`).
    "mlproject",
];

/// Types for other extensions, as the usual system MIME tables give them.
const KNOWN_TYPES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("bmp", "image/bmp"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("ico", "image/vnd.microsoft.icon"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("css", "text/css"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("tar", "application/x-tar"),
    ("gz", "application/gzip"),
    ("bz2", "application/x-bzip2"),
    ("mp3", "audio/mpeg"),
    ("wav", "audio/x-wav"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
];

/// The `Content-Type` for an artifact file named `name` (a file name or a path).
pub fn content_type_for(name: &str) -> &'static str {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    // Python's splitext: a leading dot starts a hidden name, not an extension.
    let extension = match file_name.rfind('.') {
        Some(idx) if file_name[..idx].chars().any(|c| c != '.') => &file_name[idx + 1..],
        _ => "",
    };
    let key = if extension.is_empty() {
        file_name
    } else {
        extension
    };
    if TEXT_EXTENSIONS.contains(&key) {
        return "text/plain";
    }
    let lower = extension.to_ascii_lowercase();
    KNOWN_TYPES
        .iter()
        .find(|(ext, _)| *ext == lower)
        .map(|(_, ty)| *ty)
        .unwrap_or("application/octet-stream")
}

#[cfg(test)]
mod tests {
    use super::content_type_for;

    #[test]
    fn text_files_are_plain_text() {
        for name in [
            "a.txt",
            "dir/MLmodel",
            "mlproject",
            "conda.yaml",
            "x.json",
            "r.csv",
            "l.log",
        ] {
            assert_eq!(content_type_for(name), "text/plain", "{name}");
        }
    }

    #[test]
    fn known_binary_types_and_fallback() {
        assert_eq!(content_type_for("plot.png"), "image/png");
        assert_eq!(content_type_for("PLOT.PNG"), "image/png");
        assert_eq!(content_type_for("model.skops"), "application/octet-stream");
        assert_eq!(content_type_for("model.pkl"), "application/octet-stream");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
        assert_eq!(content_type_for(".txt"), "application/octet-stream");
        assert_eq!(content_type_for("a.tar.gz"), "application/gzip");
    }
}
