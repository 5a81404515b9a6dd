//! Builds the web UI from the repository's `web/` project with npm and writes
//! `$OUT_DIR/assets.rs`, the table of files the crate embeds. Std only: the script reruns on
//! every UI change, so it must not drag in dependency builds of its own.
//!
//! - `MLOX_WEB_DIST=<dir>` embeds a UI built elsewhere (the output of `npm run build`) and
//!   skips npm. A relative path is taken from the workspace root.
//! - `MLOX_WEB_REQUIRED=1` fails the build when npm is missing or the UI does not build;
//!   without it such a build still succeeds, embedding a page that says how to get the UI.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the UI build reads, relative to `web/`.
const INPUTS: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

/// Vite's `build.assetsDir`: every file it emits there has a content hash in its name.
const ASSETS_DIR: &str = "static-files/";

/// Below this a compressed copy saves too little to be worth its bytes in the binary.
const GZIP_MIN_BYTES: usize = 1024;

struct Failure {
    reason: String,
    output: String,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            output: String::new(),
        }
    }
}

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("the crate lives in <workspace>/crates/mlox-web")
        .to_path_buf();
    let web = root.join("web");

    println!("cargo::rerun-if-env-changed=MLOX_WEB_DIST");
    println!("cargo::rerun-if-env-changed=MLOX_WEB_REQUIRED");
    let required = env::var("MLOX_WEB_REQUIRED")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));

    let (dist, built) = match env::var_os("MLOX_WEB_DIST").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = root.join(dir);
            println!("cargo::rerun-if-changed={}", dir.display());
            assert!(
                dir.join("index.html").is_file(),
                "MLOX_WEB_DIST={} has no index.html; point it at the output of `npm run build`",
                dir.display()
            );
            (dir, true)
        }
        None => {
            // Cargo reruns the script on every build while a watched path is missing.
            for input in INPUTS {
                let path = web.join(input);
                if path.exists() {
                    println!("cargo::rerun-if-changed={}", path.display());
                }
            }
            match build_ui(&web, &out_dir) {
                Ok(dir) => (dir, true),
                Err(failure) => {
                    if required {
                        if !failure.output.is_empty() {
                            eprintln!("{}", failure.output);
                        }
                        panic!(
                            "the web UI could not be built: {} (MLOX_WEB_REQUIRED is set)",
                            failure.reason
                        );
                    }
                    println!(
                        "cargo::warning=web UI not built: {}; embedding a placeholder page \
                         (the API is unaffected). Run the build with MLOX_WEB_REQUIRED=1 to see \
                         npm's output.",
                        failure.reason
                    );
                    // Installing npm does not touch any watched input; a changed PATH (a
                    // new Node.js version manager, say) at least gets another try.
                    println!("cargo::rerun-if-env-changed=PATH");
                    (placeholder(&out_dir, &failure.reason), false)
                }
            }
        }
    };

    let files = collect(&dist);
    fs::write(out_dir.join("assets.rs"), generate(&out_dir, &files, built))
        .expect("writing assets.rs");
}

fn build_ui(web: &Path, out_dir: &Path) -> Result<PathBuf, Failure> {
    if !web.join("package.json").is_file() {
        return Err(Failure::new(
            "there is no web/ project next to the crates/ directory",
        ));
    }
    let _lock = lock(web);
    if needs_install(web) {
        run(
            npm()
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(web),
            "`npm ci`",
        )?;
    }
    let dist = out_dir.join("web-dist");
    remove_dir(&dist);
    run(
        npm()
            .args(["run", "build"])
            .current_dir(web)
            .env("MLOX_WEB_OUT_DIR", &dist),
        "`npm run build`",
    )?;
    if !dist.join("index.html").is_file() {
        return Err(Failure::new("`npm run build` wrote no index.html"));
    }
    Ok(dist)
}

fn npm() -> Command {
    // Windows ships npm as a batch script, which process creation only finds by its full name.
    Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" })
}

fn run(command: &mut Command, what: &str) -> Result<(), Failure> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Failure::new("npm was not found on PATH (install Node.js 20.19+ and npm)")
        } else {
            Failure::new(format!("{what} could not start: {e}"))
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Failure {
        reason: format!("{what} failed ({})", output.status),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// `npm ci` is slow and wipes node_modules, so it runs only when the tree is missing or
/// predates the lockfile.
fn needs_install(web: &Path) -> bool {
    let modules = web.join("node_modules");
    // npm writes this hidden lockfile once an install completes, so an interrupted install
    // does not pass for a fresh one.
    let installed = modified(&modules.join(".package-lock.json")).or_else(|| modified(&modules));
    match (installed, modified(&web.join("package-lock.json"))) {
        (None, _) => true,
        (Some(installed), Some(lockfile)) => installed < lockfile,
        (Some(_), None) => false,
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Two builds of this crate (two target directories, an IDE and a terminal) must not run npm
/// in the same `web/` at once: concurrent `npm ci` runs corrupt node_modules. Best effort: a
/// lock that cannot be taken is skipped rather than failing the build.
fn lock(web: &Path) -> Option<fs::File> {
    let name = format!(
        "mlox-web-{:016x}.lock",
        fnv1a(web.as_os_str().as_encoded_bytes())
    );
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env::temp_dir().join(name))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

fn remove_dir(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => panic!("removing {}: {e}", dir.display()),
    }
}

fn placeholder(out_dir: &Path, reason: &str) -> PathBuf {
    let dir = out_dir.join("web-placeholder");
    remove_dir(&dir);
    fs::create_dir_all(&dir).expect("creating the placeholder directory");
    let page = PLACEHOLDER.replace("{reason}", &escape_html(reason));
    fs::write(dir.join("index.html"), page).expect("writing the placeholder page");
    dir
}

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mlox: web UI not built</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 4rem auto; padding: 0 1rem; line-height: 1.5; color: #1f2937; }
code, pre { background: #f3f4f6; border-radius: 4px; }
code { padding: 0 .25rem; }
pre { padding: .75rem 1rem; overflow-x: auto; }
</style>
</head>
<body>
<h1>The web UI was not built</h1>
<p>This mlox binary was compiled without its web UI: {reason}. The REST API works as usual.</p>
<p>To include the UI, install Node.js (20.19 or newer) with npm and rebuild from the repository root;
<code>MLOX_WEB_REQUIRED=1</code> makes the build fail with npm's output if the UI still cannot be built:</p>
<pre><code>MLOX_WEB_REQUIRED=1 cargo build --release -p mlox-cli</code></pre>
<p>To embed a UI built elsewhere, run <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code> and
point <code>MLOX_WEB_DIST</code> at the resulting <code>dist</code> directory when building.</p>
</body>
</html>
"#;

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every file under `dir` as (path relative to `dir` with `/` separators, absolute path),
/// sorted by the relative path so the crate can binary-search the table.
fn collect(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
        let entries =
            fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                println!(
                    "cargo::warning=skipping {}: its name is not UTF-8",
                    path.display()
                );
                continue;
            };
            let rel = format!("{prefix}{name}");
            if path.is_dir() {
                walk(&path, &format!("{rel}/"), files);
            } else {
                files.push((rel, path));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, "", &mut files);
    files.sort();
    files
}

fn generate(out_dir: &Path, files: &[(String, PathBuf)], built: bool) -> String {
    let gzip_dir = out_dir.join("web-gzip");
    remove_dir(&gzip_dir);
    let mut gzip_works = gzip_available();
    let mut code = String::new();
    let _ = writeln!(code, "pub(crate) const UI_BUILT: bool = {built};");
    let _ = writeln!(code, "pub(crate) static ASSETS: &[Asset] = &[");
    for (rel, path) in files {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let content_type = content_type(rel);
        let tag = format!("{:016x}", fnv1a(&bytes));
        let mut gzip = "None".to_string();
        if gzip_works && compressible(content_type) && bytes.len() >= GZIP_MIN_BYTES {
            let dest = gzip_dir.join(format!("{rel}.gz"));
            match compress(path, &dest) {
                Some(len) if len * 10 < bytes.len() * 9 => {
                    gzip = format!(
                        "Some(Encoded {{ body: include_bytes!({:?}), etag: {:?} }})",
                        utf8(&dest),
                        format!("\"{tag}-gzip\"")
                    );
                }
                Some(_) => {}
                None => gzip_works = false,
            }
        }
        let _ = writeln!(
            code,
            "    Asset {{ path: {rel:?}, content_type: {content_type:?}, hashed: {hashed}, \
             identity: Encoded {{ body: include_bytes!({body:?}), etag: {etag:?} }}, \
             gzip: {gzip} }},",
            hashed = is_hashed(rel),
            body = utf8(path),
            etag = format!("\"{tag}\""),
        );
    }
    let _ = writeln!(code, "];");
    code
}

fn utf8(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

fn gzip_available() -> bool {
    Command::new("gzip")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compresses with the system's gzip (no name or timestamp in the header, so builds are
/// reproducible); `None` when gzip misbehaves, after which no more files are tried.
fn compress(src: &Path, dest: &Path) -> Option<usize> {
    let output = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(src)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() || !output.stdout.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    fs::create_dir_all(dest.parent()?).ok()?;
    fs::write(dest, &output.stdout).ok()?;
    Some(output.stdout.len())
}

fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Formats that are already compressed (images, woff2) gain nothing from gzip.
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/manifest+json")
        || content_type.starts_with("application/wasm")
        || content_type.starts_with("image/svg+xml")
        || content_type.starts_with("image/x-icon")
        || content_type.starts_with("font/ttf")
        || content_type.starts_with("font/otf")
}

/// Vite names what it emits under `static-files/` `<name>-<hash>.<ext>` with an 8-character
/// URL-safe hash (the hash itself may contain `-`), so such a name never changes content.
fn is_hashed(path: &str) -> bool {
    let Some(name) = path.strip_prefix(ASSETS_DIR) else {
        return false;
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    name.split('.').any(|part| {
        let bytes = part.as_bytes();
        bytes.len() > 9
            && bytes[bytes.len() - 9] == b'-'
            && bytes[bytes.len() - 8..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    })
}

/// FNV-1a: a stable content hash for ETags and lock names without a hashing crate.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
