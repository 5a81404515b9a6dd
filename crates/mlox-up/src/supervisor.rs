//! Keeps the platform's processes running: each part is a child process in its own process
//! group (so a terminal's Ctrl-C reaches `mlox up` alone, which then stops the parts in
//! order), its output merged into ours line by line with the part's name in front, restarted
//! with a growing pause when it exits on its own, and stopped with SIGTERM (SIGKILL after a
//! grace period) when the platform stops.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One process of the platform, as it is started (and started again).
#[derive(Clone, Debug)]
pub struct PartSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Answers 2xx once the part serves.
    pub ready_url: String,
    /// What a person opens, shown in the table of addresses.
    pub address: String,
    pub what: String,
    /// Where the part runs; `None` keeps `mlox up`'s own directory. Notebook servers start their
    /// kernels here, and a notebook's relative paths must land in the notebook directory.
    pub working_dir: Option<PathBuf>,
}

/// Set in every part's environment: an mlox part exits when this process is gone, even if it
/// was killed without a chance to stop its parts.
pub const SUPERVISOR_PID_VAR: &str = "MLOX_UP_SUPERVISOR_PID";

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// A part that ran this long before exiting is restarted at once-ish again: it was healthy.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(15);

/// A handle on the running parts; clones share them.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    stop: watch::Sender<bool>,
    parts: Mutex<Vec<JoinHandle<()>>>,
    width: usize,
}

impl Supervisor {
    pub fn new(width: usize) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                stop: watch::channel(false).0,
                parts: Mutex::new(Vec::new()),
                width,
            }),
        }
    }

    pub fn start(&self, spec: PartSpec) {
        let stop = self.inner.stop.subscribe();
        let width = self.inner.width;
        let task = tokio::spawn(async move { supervise(spec, stop, width).await });
        if let Ok(mut parts) = self.inner.parts.lock() {
            parts.push(task);
        }
    }

    /// Stops every part and waits until each has exited.
    pub async fn stop(&self) {
        let _ = self.inner.stop.send(true);
        let parts = match self.inner.parts.lock() {
            Ok(mut parts) => std::mem::take(&mut *parts),
            Err(_) => Vec::new(),
        };
        for part in parts {
            let _ = part.await;
        }
    }
}

/// The platform's console is its standard output: the merged lines of every part and what
/// `mlox up` itself reports. A closed stdout must not stop the platform, so failures to write
/// are ignored.
pub(crate) fn console(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn say(name: &str, width: usize, line: &str) {
    console(&format!("{name:<width$} | {line}"));
}

async fn supervise(spec: PartSpec, mut stop: watch::Receiver<bool>, width: usize) {
    let mut pause = FIRST_PAUSE;
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        let outcome = match spawn(&spec, width) {
            Ok(mut child) => {
                tokio::select! {
                    status = child.wait() => Some(status.map(|s| s.to_string())),
                    _ = stop.changed() => {
                        terminate(&spec.name, width, &mut child).await;
                        None
                    }
                }
            }
            Err(e) => Some(Err(e)),
        };
        let Some(outcome) = outcome else {
            return;
        };
        if *stop.borrow() {
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            pause = FIRST_PAUSE;
        }
        let why = match outcome {
            Ok(status) => format!("exited ({status})"),
            Err(e) => format!("could not start: {e}"),
        };
        say(
            &spec.name,
            width,
            &format!("{why}; restarting in {} s", pause.as_secs()),
        );
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

fn spawn(spec: &PartSpec, width: usize) -> std::io::Result<Child> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(SUPERVISOR_PID_VAR, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(spec.name.clone(), width, out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(spec.name.clone(), width, err));
    }
    Ok(child)
}

async fn forward(name: String, width: usize, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        say(&name, width, &line);
    }
}

/// SIGTERM to the part's whole process group (its workers and kernels too), then SIGKILL if
/// it has not exited after the grace period.
async fn terminate(name: &str, width: usize, child: &mut Child) {
    if let Some(pid) = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            say(name, width, "did not stop in time; killed");
            let _ = child.kill().await;
        }
    }
}
