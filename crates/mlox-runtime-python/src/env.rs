//! Where worker processes find their interpreter: the one configured (`local`), or a virtualenv
//! built from the model's `python_env.yaml` and cached under a key of everything that shapes it
//! (`virtualenv`), the way `mlflow models serve --env-manager virtualenv` does minus pyenv:
//! mlox never downloads interpreters, it builds the venv on the configured one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use mlox_core::{Error, Result};
use mlox_mlmodel::{MlModel, PythonEnv};
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// How a model's Python environment is provided; MLflow's `--env-manager` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnvManager {
    /// Run the workers on the configured interpreter with whatever it has installed.
    #[default]
    Local,
    /// Create (once, then reuse) a venv holding the model's pip requirements.
    Virtualenv,
}

impl FromStr for EnvManager {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "local" => Ok(EnvManager::Local),
            "virtualenv" => Ok(EnvManager::Virtualenv),
            "conda" | "uv" => Err(Error::not_implemented(format!(
                "the '{s}' environment manager is not supported; use 'local' or 'virtualenv'"
            ))),
            other => Err(Error::invalid(format!(
                "unknown environment manager '{other}'; use 'local' or 'virtualenv'"
            ))),
        }
    }
}

/// Packages the worker script itself imports; a model requiring only `mlflow-skinny` would
/// otherwise get a venv the worker cannot start in. Unpinned so the model's pins win.
const WORKER_REQUIREMENTS: &[&str] = &["pyarrow", "pandas", "numpy"];

/// Bump when the layout or the commands of a cached env change, so old envs are not reused.
const ENV_FORMAT: &str = "mlox-venv-1";

/// Marks a venv whose installation finished; an env without it is a leftover of a crash.
const READY_MARKER: &str = ".mlox-ready";

/// Everything that decides a model's venv, resolved against the model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvSpec {
    /// The Python version the model was saved with (informational: mlox uses its own).
    pub python: Option<String>,
    pub build_dependencies: Vec<String>,
    /// pip requirement lines, with `-r`/`-c` file references made absolute.
    pub requirements: Vec<String>,
    /// Contents of the files the requirement lines reference, in order: they change the env
    /// without changing python_env.yaml.
    referenced: Vec<(String, String)>,
}

impl EnvSpec {
    pub(crate) fn from_model(model_dir: &Path, mlmodel: &MlModel) -> Result<Self> {
        let env = match mlmodel.python_env_file() {
            Some(file) => {
                let path = model_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
                PythonEnv::from_yaml(&text)?
            }
            // Models saved before python_env.yaml existed still carry requirements.txt.
            None if model_dir.join("requirements.txt").is_file() => PythonEnv {
                python: mlmodel.python_version().map(str::to_owned),
                build_dependencies: vec!["pip".into()],
                dependencies: vec!["-r requirements.txt".into()],
            },
            None => {
                return Err(Error::invalid(format!(
                    "{} has neither python_env.yaml nor requirements.txt, so no virtualenv can be \
                     built for it; serve it with the local environment manager",
                    model_dir.display()
                )));
            }
        };
        let mut requirements = Vec::with_capacity(env.dependencies.len());
        let mut referenced = Vec::new();
        for line in &env.dependencies {
            match split_file_reference(line) {
                Some((flag, file)) => {
                    let path = model_dir.join(file);
                    let content = std::fs::read_to_string(&path).map_err(|e| {
                        Error::invalid(format!(
                            "the model's python_env.yaml refers to {}, which cannot be read: {e}",
                            path.display()
                        ))
                    })?;
                    requirements.push(format!("{flag} {}", path.display()));
                    referenced.push((file.to_owned(), content));
                }
                None => requirements.push(line.trim().to_owned()),
            }
        }
        Ok(EnvSpec {
            python: env.python,
            build_dependencies: env.build_dependencies,
            requirements,
            referenced,
        })
    }

    /// The cache key: a digest of the spec and of the interpreter the venv is built on.
    /// Absolute paths of referenced files are left out so a model copied elsewhere (another
    /// download of the same version) reuses the env.
    pub(crate) fn key(&self, base_python: &Path, base_version: &str) -> String {
        let mut hash = Sha256::new();
        let mut field = |label: &str, value: &str| {
            hash.update(label.as_bytes());
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value.as_bytes());
        };
        field("format", ENV_FORMAT);
        field("base-python", &base_python.to_string_lossy());
        field("base-version", base_version);
        field("python", self.python.as_deref().unwrap_or(""));
        for dep in &self.build_dependencies {
            field("build", dep);
        }
        for line in &self.requirements {
            match split_file_reference(line) {
                Some((flag, _)) => field("requirement-file", flag),
                None => field("requirement", line),
            }
        }
        for (file, content) in &self.referenced {
            field("file-name", file);
            field("file", content);
        }
        let digest = hash.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The requirements file mlox writes into the venv: the model's lines plus the worker's.
    pub(crate) fn requirements_file(&self) -> String {
        let mut text = String::new();
        for line in self
            .requirements
            .iter()
            .map(String::as_str)
            .chain(WORKER_REQUIREMENTS.iter().copied())
        {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// `-r file`, `--requirement=file`, `-c file`… → (flag, file).
fn split_file_reference(line: &str) -> Option<(&'static str, &str)> {
    let line = line.trim();
    for (flags, canonical) in [
        (&["-r", "--requirement"][..], "-r"),
        (&["-c", "--constraint"][..], "-c"),
    ] {
        for flag in flags {
            if let Some(rest) = line.strip_prefix(flag) {
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                // `-rfile` is valid pip syntax, `--requirementfile` is not.
                if flag.starts_with("--")
                    && !(line
                        .as_bytes()
                        .get(flag.len())
                        .is_some_and(|b| *b == b'=' || b.is_ascii_whitespace()))
                {
                    continue;
                }
                let file = rest.trim();
                if !file.is_empty() {
                    return Some((canonical, file));
                }
            }
        }
    }
    None
}

/// One program invocation of the build, kept as data so it can be checked without running pip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub program: PathBuf,
    pub args: Vec<String>,
}

pub(crate) fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The commands that build `venv` for `spec` on `base_python`, in order.
pub(crate) fn build_steps(
    spec: &EnvSpec,
    base_python: &Path,
    venv: &Path,
    requirements_file: &Path,
) -> Vec<Step> {
    let python = venv_python(venv);
    let pip = |extra: Vec<String>| {
        let mut args: Vec<String> = [
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        args.extend(extra);
        Step {
            program: python.clone(),
            args,
        }
    };
    let mut steps = vec![Step {
        program: base_python.to_owned(),
        args: vec![
            "-m".into(),
            "venv".into(),
            venv.to_string_lossy().into_owned(),
        ],
    }];
    if !spec.build_dependencies.is_empty() {
        let mut extra = vec!["--upgrade".to_owned()];
        extra.extend(spec.build_dependencies.iter().cloned());
        steps.push(pip(extra));
    }
    steps.push(pip(vec![
        "-r".into(),
        requirements_file.to_string_lossy().into_owned(),
    ]));
    steps
}

/// The root of mlox's caches: `$MLOX_CACHE_DIR`, else `$XDG_CACHE_HOME/mlox`, else
/// `~/.cache/mlox`, else the temp dir.
pub(crate) fn default_cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLOX_CACHE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("mlox");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".cache").join("mlox");
    }
    std::env::temp_dir().join("mlox")
}

/// Returns the interpreter of the model's venv under `envs_dir`, building it first if needed.
/// Concurrent builders of one env (two workers, two mlox processes) serialize on a lock file.
pub(crate) async fn ensure_virtualenv(
    model_dir: &Path,
    mlmodel: &MlModel,
    base_python: &Path,
    envs_dir: &Path,
) -> Result<PathBuf> {
    let spec = EnvSpec::from_model(model_dir, mlmodel)?;
    let base_version = interpreter_version(base_python).await?;
    if let Some(wanted) = spec.python.as_deref()
        && major_minor(wanted) != major_minor(&base_version)
    {
        tracing::warn!(
            model = %model_dir.display(),
            "the model was saved with Python {wanted} but its virtualenv is built on Python \
             {base_version} ({}); mlox does not install other interpreters",
            base_python.display()
        );
    }
    let key = spec.key(base_python, &base_version);
    let venv = envs_dir.join(&key);
    std::fs::create_dir_all(envs_dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", envs_dir.display())))?;
    let lock_path = envs_dir.join(format!("{key}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::internal(format!("cannot open {}: {e}", lock_path.display())))?;
    // Held until this function returns: dropping the file releases the lock.
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| Error::internal(format!("waiting for the env lock failed: {e}")))?
        .map_err(|e| Error::internal(format!("cannot lock {}: {e}", lock_path.display())))?;

    if venv.join(READY_MARKER).is_file() {
        drop(lock);
        return Ok(venv_python(&venv));
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| {
            Error::internal(format!(
                "cannot remove the unfinished env {}: {e}",
                venv.display()
            ))
        })?;
    }
    tracing::info!(
        model = %model_dir.display(),
        env = %venv.display(),
        "building the model's virtualenv (first use of this environment)"
    );
    let started = std::time::Instant::now();
    let requirements_file = envs_dir.join(format!("{key}.requirements.txt"));
    std::fs::write(&requirements_file, spec.requirements_file()).map_err(|e| {
        Error::internal(format!("cannot write {}: {e}", requirements_file.display()))
    })?;
    for step in build_steps(&spec, base_python, &venv, &requirements_file) {
        run_step(&step, model_dir).await?;
    }
    std::fs::write(venv.join(READY_MARKER), spec.requirements_file())
        .map_err(|e| Error::internal(format!("cannot finish {}: {e}", venv.display())))?;
    tracing::info!(
        env = %venv.display(),
        seconds = started.elapsed().as_secs_f64(),
        "virtualenv ready"
    );
    drop(lock);
    Ok(venv_python(&venv))
}

async fn run_step(step: &Step, model_dir: &Path) -> Result<()> {
    let output = Command::new(&step.program)
        .args(&step.args)
        .current_dir(model_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::internal(format!("cannot run {}: {e}", step.program.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        tracing::debug!(target: "mlox_runtime::python::env", "{line}");
    }
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::internal(format!(
        "building the model's virtualenv failed: `{} {}` ended with {}:\n{}",
        step.program.display(),
        step.args.join(" "),
        output.status,
        tail.join("\n")
    )))
}

async fn interpreter_version(python: &Path) -> Result<String> {
    let output = Command::new(python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            Error::internal(format!(
                "cannot run the Python interpreter {}: {e}",
                python.display()
            ))
        })?;
    if !output.status.success() {
        return Err(Error::internal(format!(
            "the Python interpreter {} failed ({}): {}",
            python.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MLMODEL: &str = "flavors:\n  python_function:\n    env:\n      virtualenv: python_env.yaml\n    loader_module: mlflow.sklearn\n    python_version: 3.11.7\n";

    fn model(python_env: &str, requirements: &str) -> (tempfile::TempDir, MlModel) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("MLmodel"), MLMODEL).unwrap();
        std::fs::write(dir.path().join("python_env.yaml"), python_env).unwrap();
        std::fs::write(dir.path().join("requirements.txt"), requirements).unwrap();
        let mlmodel = MlModel::from_dir(dir.path()).unwrap();
        (dir, mlmodel)
    }

    // What MLflow 3.17 writes next to a logged sklearn model.
    const PYTHON_ENV: &str = "python: 3.11.7\nbuild_dependencies:\n- pip==24.0\n- setuptools\n- wheel\ndependencies:\n- -r requirements.txt\n";

    #[test]
    fn requirement_files_are_resolved_against_the_model_dir() {
        let (dir, mlmodel) = model(PYTHON_ENV, "mlflow==3.17.2\nscikit-learn==1.9.1\n");
        let spec = EnvSpec::from_model(dir.path(), &mlmodel).unwrap();
        assert_eq!(spec.python.as_deref(), Some("3.11.7"));
        assert_eq!(
            spec.build_dependencies,
            ["pip==24.0", "setuptools", "wheel"]
        );
        assert_eq!(
            spec.requirements,
            [format!(
                "-r {}",
                dir.path().join("requirements.txt").display()
            )]
        );
        let file = spec.requirements_file();
        assert!(file.starts_with("-r /"), "{file}");
        assert!(file.ends_with("pyarrow\npandas\nnumpy\n"), "{file}");
    }

    #[test]
    fn the_key_follows_requirements_content_not_location() {
        let (a, ma) = model(PYTHON_ENV, "mlflow==3.17.2\n");
        let (b, mb) = model(PYTHON_ENV, "mlflow==3.17.2\n");
        let (c, mc) = model(PYTHON_ENV, "mlflow==3.17.2\nxgboost==3.2.0\n");
        let (d, md) = model(&PYTHON_ENV.replace("3.11.7", "3.12.1"), "mlflow==3.17.2\n");
        let key = |dir: &tempfile::TempDir, m: &MlModel, base: &str| {
            EnvSpec::from_model(dir.path(), m)
                .unwrap()
                .key(Path::new("/usr/bin/python3"), base)
        };
        let ka = key(&a, &ma, "3.11.7");
        assert_eq!(ka.len(), 32);
        assert_eq!(
            ka,
            key(&b, &mb, "3.11.7"),
            "same requirements in another dir"
        );
        assert_ne!(ka, key(&c, &mc, "3.11.7"), "a changed requirements.txt");
        assert_ne!(ka, key(&d, &md, "3.11.7"), "another python version");
        assert_ne!(
            ka,
            key(&a, &ma, "3.11.8"),
            "another base interpreter version"
        );
        let other_base = EnvSpec::from_model(a.path(), &ma)
            .unwrap()
            .key(Path::new("/opt/python3"), "3.11.7");
        assert_ne!(ka, other_base, "another base interpreter");
    }

    #[test]
    fn build_steps_create_the_venv_then_pip_install_into_it() {
        let (dir, mlmodel) = model(PYTHON_ENV, "mlflow==3.17.2\n");
        let spec = EnvSpec::from_model(dir.path(), &mlmodel).unwrap();
        let steps = build_steps(
            &spec,
            Path::new("/usr/bin/python3"),
            Path::new("/cache/envs/k"),
            Path::new("/cache/envs/k.requirements.txt"),
        );
        let rendered: Vec<String> = steps
            .iter()
            .map(|s| format!("{} {}", s.program.display(), s.args.join(" ")))
            .collect();
        assert_eq!(
            rendered,
            [
                "/usr/bin/python3 -m venv /cache/envs/k",
                "/cache/envs/k/bin/python -m pip install --disable-pip-version-check --no-input --upgrade pip==24.0 setuptools wheel",
                "/cache/envs/k/bin/python -m pip install --disable-pip-version-check --no-input -r /cache/envs/k.requirements.txt",
            ]
        );
    }

    #[test]
    fn file_references_in_every_spelling() {
        assert_eq!(
            split_file_reference("-r requirements.txt"),
            Some(("-r", "requirements.txt"))
        );
        assert_eq!(split_file_reference("-rreqs.txt"), Some(("-r", "reqs.txt")));
        assert_eq!(
            split_file_reference("--requirement=a.txt"),
            Some(("-r", "a.txt"))
        );
        assert_eq!(
            split_file_reference("--requirement a.txt"),
            Some(("-r", "a.txt"))
        );
        assert_eq!(
            split_file_reference("-c constraints.txt"),
            Some(("-c", "constraints.txt"))
        );
        assert_eq!(split_file_reference("mlflow==3.17.2"), None);
        assert_eq!(split_file_reference("--requirementx"), None);
    }

    #[test]
    fn a_missing_referenced_file_is_reported() {
        let (dir, mlmodel) = model(PYTHON_ENV, "");
        std::fs::remove_file(dir.path().join("requirements.txt")).unwrap();
        let err = EnvSpec::from_model(dir.path(), &mlmodel).unwrap_err();
        assert!(err.message.contains("requirements.txt"), "{}", err.message);
    }

    #[test]
    fn env_manager_names_match_mlflow() {
        assert_eq!("local".parse::<EnvManager>().unwrap(), EnvManager::Local);
        assert_eq!(
            "virtualenv".parse::<EnvManager>().unwrap(),
            EnvManager::Virtualenv
        );
        assert_eq!(
            "conda".parse::<EnvManager>().unwrap_err().code,
            mlox_core::Code::NotImplemented
        );
        assert_eq!(
            "pip".parse::<EnvManager>().unwrap_err().code,
            mlox_core::Code::InvalidParameterValue
        );
    }
}
