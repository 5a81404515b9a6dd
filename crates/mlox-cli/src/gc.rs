//! `mlox gc`: `mlflow gc` for an mlox store. Runs, experiments and logged models in the
//! `deleted` stage (all of them, those deleted long enough ago, or those named) are removed for
//! good with their artifacts, locally or in S3. Every removal re-checks the stage in its own
//! transaction, so it is safe while servers use the store: a run restored meanwhile is kept.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use mlox_artifacts::{ArtifactLocations, ArtifactRepository};
use mlox_core::location::Location;
use mlox_store::{GcItem, GcPlan, GcRequest, SqlStore, StoreOptions};

#[derive(Args)]
pub struct GcArgs {
    /// The store to collect, as given to `mlox server`.
    #[arg(
        long,
        env = "MLFLOW_BACKEND_STORE_URI",
        default_value = crate::DEFAULT_BACKEND_STORE_URI
    )]
    backend_store_uri: String,
    /// Where the artifact proxy stores files (the server's `--artifacts-destination`); needed
    /// for artifacts at `mlflow-artifacts:` locations.
    #[arg(
        long,
        env = "MLFLOW_ARTIFACTS_DESTINATION",
        default_value = "./mlartifacts"
    )]
    artifacts_destination: String,
    /// Only what was deleted at least this long ago, e.g. `30d`, `1d2h3m4s`, `1.5h`.
    #[arg(long)]
    older_than: Option<String>,
    /// Comma-separated runs to remove; each must be deleted.
    #[arg(long)]
    run_ids: Option<String>,
    /// Comma-separated experiments to remove with all their runs; each must be deleted.
    #[arg(long)]
    experiment_ids: Option<String>,
    /// Comma-separated logged models to remove; each must be deleted.
    #[arg(long)]
    logged_model_ids: Option<String>,
    /// Say what would be removed and remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(args: GcArgs) -> anyhow::Result<()> {
    let request = GcRequest {
        older_than_ms: args.older_than.as_deref().map(parse_age).transpose()?,
        run_ids: split_ids(args.run_ids.as_deref()),
        experiment_ids: split_ids(args.experiment_ids.as_deref()),
        logged_model_ids: split_ids(args.logged_model_ids.as_deref()),
    };
    let store = SqlStore::open(StoreOptions {
        uri: args.backend_store_uri.clone(),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 2,
    })
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    let plan = store
        .gc_plan(&request)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let total = plan.runs.len() + plan.logged_models.len() + plan.experiments.len();
    if args.dry_run {
        for (kind, items) in kinds(&plan) {
            for item in items {
                say(&format!(
                    "would permanently delete {kind} {} (artifacts: {})",
                    item.id, item.artifact_location
                ));
            }
        }
        say(&format!(
            "{total} to delete; nothing was deleted (--dry-run)"
        ));
        store
            .close()
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        return Ok(());
    }
    let proxy = open_proxy(&args.artifacts_destination).await?;
    let locations = ArtifactLocations::new(proxy);
    let progress = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut removed = 0usize;
    let mut kept = 0usize;
    for run in &plan.runs {
        progress.set_message(format!("run {}", run.id));
        let done = store
            .hard_delete_run(&run.id, run.with_experiment)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if done {
            delete_artifacts(&locations, run).await;
            progress.suspend(|| {
                say(&format!(
                    "Run with ID {} has been permanently deleted.",
                    run.id
                ))
            });
            removed += 1;
        } else {
            kept += 1;
        }
        progress.inc(1);
    }
    for model in &plan.logged_models {
        progress.set_message(format!("logged model {}", model.id));
        let done = store
            .hard_delete_logged_model(&model.id, model.with_experiment)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if done {
            delete_artifacts(&locations, model).await;
            progress.suspend(|| {
                say(&format!(
                    "Logged model with ID {} has been permanently deleted.",
                    model.id
                ))
            });
            removed += 1;
        } else {
            kept += 1;
        }
        progress.inc(1);
    }
    for experiment in &plan.experiments {
        progress.set_message(format!("experiment {}", experiment.id));
        let done = store
            .hard_delete_experiment(&experiment.id)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if done {
            progress.suspend(|| {
                say(&format!(
                    "Experiment with ID {} has been permanently deleted.",
                    experiment.id
                ))
            });
            removed += 1;
        } else {
            kept += 1;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if kept > 0 {
        tracing::warn!(
            kept,
            "some were restored or removed by someone else meanwhile and are kept"
        );
    }
    tracing::info!(removed, "garbage collection done");
    store
        .close()
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    Ok(())
}

fn kinds(plan: &GcPlan) -> [(&'static str, &[GcItem]); 3] {
    [
        ("run", &plan.runs),
        ("logged model", &plan.logged_models),
        ("experiment", &plan.experiments),
    ]
}

/// Results of a command go to stdout, one line each, as `mlflow gc` prints them.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

async fn open_proxy(destination: &str) -> anyhow::Result<Option<Arc<dyn ArtifactRepository>>> {
    // A missing local destination holds no artifacts; do not create one just to look.
    if let Ok(Location::Local(path)) = Location::parse(destination)
        && !path.exists()
    {
        return Ok(None);
    }
    let repo = mlox_artifacts::open_artifact_repository(destination)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))
        .with_context(|| format!("opening the artifact destination {destination}"))?;
    Ok(Some(repo))
}

/// Removes an entity's artifacts. Only a location that names the entity (its path holds the
/// run's or model's id) is touched, so a stored location pointing at a shared root can never
/// take other data with it. A failure is reported and the collection goes on, as in MLflow.
async fn delete_artifacts(locations: &ArtifactLocations, item: &GcItem) {
    let uri = item.artifact_location.as_str();
    if !uri.contains(item.id.as_str()) {
        tracing::warn!(id = %item.id, uri, "the artifact location does not name this entity; its artifacts are left alone");
        return;
    }
    let result = async {
        let location = locations.locate(uri).await?;
        if !location.base.is_root() {
            return location.repo.delete(&location.base).await;
        }
        // A directory of its own (a store without the proxy): remove the directory itself.
        match Location::parse(uri) {
            Ok(Location::Local(path)) => remove_local_dir(&path).await,
            _ => Err(mlox_core::Error::invalid(format!(
                "cannot delete the root of '{uri}'"
            ))),
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(id = %item.id, uri, "could not delete the artifacts: {}", e.message);
    }
}

async fn remove_local_dir(path: &Path) -> mlox_core::Result<()> {
    let meta = match tokio::fs::symlink_metadata(path).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(mlox_core::Error::internal(e.to_string())),
    };
    let removed = if meta.is_dir() {
        tokio::fs::remove_dir_all(path).await
    } else {
        // A link (or a file) in the run's place: remove it, never what it points at.
        tokio::fs::remove_file(path).await
    };
    removed.map_err(|e| mlox_core::Error::internal(format!("{}: {e}", path.display())))
}

fn split_ids(ids: Option<&str>) -> Option<Vec<String>> {
    ids.map(|ids| {
        ids.split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// `mlflow gc --older-than`'s format: `[#d][#h][#m][#s]`, each number possibly fractional.
fn parse_age(text: &str) -> anyhow::Result<i64> {
    let invalid = || {
        anyhow::anyhow!(
            "Could not parse any time information from '{text}'. Examples of valid strings: \
             '8h', '2d8h5m20s', '2m4s'"
        )
    };
    let mut rest = text;
    let mut total_seconds = 0.0f64;
    let mut last_unit = 0usize;
    const UNITS: [(char, f64); 4] = [('d', 86_400.0), ('h', 3_600.0), ('m', 60.0), ('s', 1.0)];
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(end);
        let unit = tail.chars().next().ok_or_else(invalid)?;
        let position = UNITS
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(invalid)?;
        // Units in order (d, h, m, s), each at most once.
        if position < last_unit || number.is_empty() {
            return Err(invalid());
        }
        last_unit = position + 1;
        let value: f64 = number.parse().map_err(|_| invalid())?;
        total_seconds += value * UNITS[position].1;
        rest = &tail[unit.len_utf8()..];
    }
    Ok((total_seconds * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_mlflow_gc_reads_them() {
        assert_eq!(parse_age("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(
            parse_age("1d2h3m4s").unwrap(),
            ((86_400 + 7_200 + 180 + 4) * 1000) as i64
        );
        assert_eq!(parse_age("1.5h").unwrap(), 5_400_000);
        assert_eq!(parse_age("2m4s").unwrap(), 124_000);
        for bad in ["", "30", "d", "1x", "1s2m", "1d1d", "-1d", "1 d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn id_lists_split_on_commas() {
        assert_eq!(
            split_ids(Some("a, b,,c")),
            Some(vec!["a".to_string(), "b".into(), "c".into()])
        );
        assert_eq!(split_ids(None), None);
    }
}
