//! A real S3 server for tests: `moto_server` (PyPI `moto[server]`) on a free loopback port,
//! one per test process (shared by its tests, whatever runtime each runs on), plus raw HTTP helpers to look at the bucket behind the repository's
//! back. Moto accepts unsigned requests, which is how buckets get created (object_store cannot
//! create them) and how tests list keys and open multipart uploads.
//!
//! `moto_server` is looked up as `$MLOX_VENV/bin/moto_server`, then on `PATH`. Without it the
//! S3 tests are skipped with a note, unless `MLOX_REQUIRE_S3=1` makes that a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

pub struct Moto {
    pub port: u16,
    /// Kept open for the life of the process: when it closes, the wrapper kills moto, so no
    /// server outlives the tests even when the test process is killed.
    _lifeline: Mutex<ChildStdin>,
    _wrapper: Mutex<Child>,
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new empty bucket with a name unique to this process and call.
    pub fn bucket(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mlox-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (status, body) = self.request("PUT", &format!("/{name}"));
        assert_eq!(status, 200, "creating bucket {name}: {body}");
        name
    }

    /// One unsigned request; returns the status and the body.
    pub fn request(&self, method: &str, target: &str) -> (u16, String) {
        raw_request(self.port, method, target).unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    /// Every key in `bucket` under `prefix`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self.request(
            "GET",
            &format!(
                "/{bucket}?list-type=2&max-keys=1000&prefix={}",
                encode(prefix)
            ),
        );
        assert_eq!(status, 200, "{body}");
        let mut keys = elements(&body, "Key");
        keys.sort();
        keys
    }

    /// The ETag S3 lists for `key` (a multipart object's ends in `-<part count>`).
    pub fn etag(&self, bucket: &str, key: &str) -> String {
        let (status, body) = self.request(
            "GET",
            &format!("/{bucket}?list-type=2&prefix={}", encode(key)),
        );
        assert_eq!(status, 200, "{body}");
        let etags = elements(&body, "ETag");
        assert_eq!(etags.len(), 1, "{body}");
        etags[0]
            .replace("&#34;", "")
            .replace("&quot;", "")
            .replace('"', "")
    }

    /// The ids of multipart uploads still open in `bucket`.
    pub fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?uploads"));
        assert_eq!(status, 200, "{body}");
        elements(&body, "UploadId")
    }

    /// Stores `data` at `key` directly, bypassing the repository.
    pub fn put_raw(&self, bucket: &str, key: &str, data: &str) {
        let request = format!(
            "PUT /{bucket}/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{data}",
            encode_path(key),
            data.len()
        );
        let (status, body) = send(self.port, &request).expect("raw put");
        assert_eq!(status, 200, "{body}");
    }
}

/// The shared server, started on first use; `None` when the S3 tests are to be skipped.
pub async fn moto() -> Option<&'static Moto> {
    static MOTO: OnceCell<Option<Moto>> = OnceCell::const_new();
    MOTO.get_or_init(start).await.as_ref()
}

async fn start() -> Option<Moto> {
    let required = std::env::var("MLOX_REQUIRE_S3").is_ok_and(|v| v == "1");
    let Some(binary) = find_moto() else {
        assert!(
            !required,
            "MLOX_REQUIRE_S3=1 but moto_server was found neither as $MLOX_VENV/bin/moto_server \
             nor on PATH; install it with `pip install 'moto[server]'`"
        );
        eprintln!("note: moto_server not found ($MLOX_VENV/bin or PATH): skipping the S3 tests");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // The wrapper runs moto, exits when moto does, and kills moto when our end of its stdin
    // closes (the test process ended, however it ended).
    let script = r#"exec 3<&0
"$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 </dev/null &
server=$!
(read -r _ <&3; kill "$server" 2>/dev/null) &
wait "$server""#;
    let mut wrapper = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&binary)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let lifeline = wrapper.stdin.take().expect("wrapper stdin");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if raw_request(port, "GET", "/").is_ok() {
            break;
        }
        if let Ok(Some(status)) = wrapper.try_wait() {
            panic!("{} exited before answering: {status}", binary.display());
        }
        assert!(
            Instant::now() < deadline,
            "{} did not answer on port {port} within 60 s",
            binary.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Moto {
        port,
        _lifeline: Mutex::new(lifeline),
        _wrapper: Mutex::new(wrapper),
    })
}

fn find_moto() -> Option<PathBuf> {
    let from_venv = std::env::var_os("MLOX_VENV")
        .map(|venv| PathBuf::from(venv).join("bin").join("moto_server"));
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.is_file())
    });
    from_venv.filter(|p| p.is_file()).or(on_path)
}

fn raw_request(port: u16, method: &str, target: &str) -> std::io::Result<(u16, String)> {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    send(port, &request)
}

fn send(port: u16, request: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:.200}")))?;
    let body = match text.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_owned(),
        None => text.clone(),
    };
    Ok((status, body))
}

/// The text of every `<name>…</name>` element, XML entities for `&`, `<`, `>` undone.
fn elements(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(text, _)| text))
        .map(|text| {
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn encode_path(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}
