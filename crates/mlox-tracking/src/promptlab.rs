//! MLflow's prompt-engineering runs (`POST /ajax-api/2.0/mlflow/runs/create-promptlab-run`),
//! which the web UI's prompt lab makes from one prompt it tried: a finished run holding the
//! model parameters, the route and the template as params, the table of the try as the
//! `eval_results_table.json` artifact, and the prompt as an MLflow model (`model/`, loaded by
//! MLflow's `mlflow._promptlab` pyfunc loader) that calls the route again when it predicts.

use crate::error::{ApiError, ApiResult};
use crate::request::Msg;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use futures::StreamExt;
use mlox_core::Error;
use mlox_core::entities::{KeyValue, RunStatus};
use mlox_core::wire::{de_opt_i64, de_opt_id};
use mlox_store::{CreateRun, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
pub struct PromptlabMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    run_name: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    prompt_template: Option<String>,
    prompt_parameters: Option<Vec<Parameter>>,
    model_route: Option<String>,
    #[serde(default)]
    model_parameters: Vec<Parameter>,
    model_input: Option<String>,
    model_output: Option<String>,
    #[serde(default)]
    model_output_parameters: Vec<Parameter>,
    mlflow_version: Option<String>,
    user_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
}

/// A key and a value of any JSON type; MLflow keeps the value's text.
#[derive(Deserialize)]
struct Parameter {
    key: String,
    #[serde(default)]
    value: Value,
}

impl Parameter {
    fn text(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            Value::Null => "None".into(),
            other => other.to_string(),
        }
    }
}

fn required<T>(value: Option<T>, name: &str, present: impl Fn(&T) -> bool) -> ApiResult<T> {
    value.filter(|v| present(v)).ok_or_else(|| {
        ApiError(Error::invalid(format!(
            "CreatePromptlabRun request must specify {name}."
        )))
    })
}

pub async fn create_promptlab_run(
    State(s): State<AppState>,
    Msg(m): Msg<PromptlabMsg>,
) -> ApiResult<Json<Value>> {
    let filled = |v: &String| !v.is_empty();
    let experiment_id = required(m.experiment_id, "experiment_id", filled)?;
    let template = required(m.prompt_template, "prompt_template", filled)?;
    let prompt_parameters = required(m.prompt_parameters, "prompt_parameters", |p| !p.is_empty())?;
    let route = required(m.model_route, "model_route", filled)?;
    let model_input = required(m.model_input, "model_input", filled)?;
    let mlflow_version = required(m.mlflow_version, "mlflow_version", filled)?;

    let run = s
        .store
        .create_run(CreateRun {
            experiment_id: Some(experiment_id),
            user_id: Some(m.user_id.unwrap_or_else(|| "unknown".into())),
            start_time: Some(m.start_time.unwrap_or_else(now_ms)),
            run_name: m.run_name.clone(),
            tags: m.tags,
        })
        .await?;
    let run_id = run.info.run_id.clone();
    let kv = |key: &str, value: String| KeyValue {
        key: key.into(),
        value,
    };
    let mut params: Vec<KeyValue> = m
        .model_parameters
        .iter()
        .map(|p| kv(&p.key, p.text()))
        .collect();
    params.push(kv("model_route", route.clone()));
    params.push(kv("prompt_template", template.clone()));
    let tags = [
        kv(
            "mlflow.loggedArtifacts",
            r#"[{"path": "eval_results_table.json", "type": "table"}]"#.into(),
        ),
        kv("mlflow.runSourceType", "PROMPT_ENGINEERING".into()),
    ];
    let written = async {
        s.store.log_batch(&run_id, &[], &params, &tags).await?;
        let files = [
            (
                "eval_results_table.json",
                eval_results_table(
                    &prompt_parameters,
                    &model_input,
                    &m.model_output_parameters,
                    m.model_output.as_deref(),
                ),
            ),
            (
                "model/MLmodel",
                mlmodel(&run_id, &prompt_parameters, &mlflow_version),
            ),
            (
                "model/parameters.yaml",
                parameters_yaml(&template, &prompt_parameters, &m.model_parameters, &route),
            ),
            (
                "model/requirements.txt",
                format!("mlflow[gateway]=={mlflow_version}\n"),
            ),
        ];
        let location = s.artifacts.locate(&run.info.artifact_uri).await?;
        for (path, text) in files {
            let path = mlox_artifacts::ArtifactPath::parse(path)?;
            let body: mlox_artifacts::ByteStream =
                futures::stream::once(async move { Ok(Bytes::from(text)) }).boxed();
            location.repo.put(&location.join(&path)?, body).await?;
        }
        Ok::<(), ApiError>(())
    }
    .await;
    let status = if written.is_ok() {
        RunStatus::Finished
    } else {
        RunStatus::Failed
    };
    s.store
        .update_run(&run_id, Some(status), Some(now_ms()), m.run_name)
        .await?;
    written?;
    let run = s.store.get_run(&run_id).await?;
    Ok(Json(json!({ "run": run })))
}

/// The table the UI shows for the try: the prompt parameters, the prompt and its output, then
/// the output parameters.
fn eval_results_table(
    prompt_parameters: &[Parameter],
    model_input: &str,
    output_parameters: &[Parameter],
    model_output: Option<&str>,
) -> String {
    let mut columns: Vec<Value> = prompt_parameters.iter().map(|p| json!(p.key)).collect();
    let mut row: Vec<Value> = prompt_parameters.iter().map(|p| json!(p.text())).collect();
    columns.extend([json!("prompt"), json!("output")]);
    row.extend([json!(model_input), json!(model_output)]);
    columns.extend(output_parameters.iter().map(|p| json!(p.key)));
    row.extend(output_parameters.iter().map(|p| json!(p.text())));
    json!({"columns": columns, "data": [row]}).to_string()
}

/// JSON strings are YAML's double-quoted scalars: every value is written quoted.
fn quoted(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

fn mlmodel(run_id: &str, prompt_parameters: &[Parameter], mlflow_version: &str) -> String {
    let column = |name: &str| json!({"type": "string", "name": name, "required": true});
    let inputs: Vec<Value> = prompt_parameters.iter().map(|p| column(&p.key)).collect();
    let outputs = vec![column("output")];
    format!(
        "artifact_path: model\nflavors:\n  python_function:\n    env:\n      virtualenv: python_env.yaml\n    \
         loader_module: mlflow._promptlab\nmlflow_version: {}\nmodel_uuid: {}\nrun_id: {}\n\
         signature:\n  inputs: {}\n  outputs: {}\nutc_time_created: {}\n",
        quoted(mlflow_version),
        quoted(&uuid::Uuid::new_v4().simple().to_string()),
        quoted(run_id),
        quoted(&Value::Array(inputs).to_string()),
        quoted(&Value::Array(outputs).to_string()),
        quoted(&utc_now()),
    )
}

fn parameters_yaml(
    template: &str,
    prompt_parameters: &[Parameter],
    model_parameters: &[Parameter],
    route: &str,
) -> String {
    let map = |params: &[Parameter]| {
        if params.is_empty() {
            " {}\n".to_string()
        } else {
            params
                .iter()
                .map(|p| format!("\n  {}: {}", quoted(&p.key), quoted(&p.text())))
                .collect::<String>()
                + "\n"
        }
    };
    format!(
        "model_parameters:{}model_route: {}\nprompt_parameters:{}prompt_template: {}\n",
        map(model_parameters),
        quoted(route),
        map(prompt_parameters),
        quoted(template),
    )
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, as MLflow stamps models.
fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = mlox_core::trace_info::civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str, value: Value) -> Parameter {
        Parameter {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn the_results_table_holds_the_try_in_mlflows_column_order() {
        let table = eval_results_table(
            &[p("city", json!("Oslo"))],
            "Tell me about Oslo",
            &[p("latency", json!(100))],
            Some("A city."),
        );
        let table: Value = serde_json::from_str(&table).unwrap_or_default();
        assert_eq!(
            table,
            json!({"columns": ["city", "prompt", "output", "latency"],
                   "data": [["Oslo", "Tell me about Oslo", "A city.", "100"]]})
        );
    }

    #[test]
    fn parameters_are_yaml_that_quotes_every_value() {
        let text = parameters_yaml("Say {{ x }}: \"hi\"", &[p("x", json!("a: b"))], &[], "chat");
        assert_eq!(
            text,
            "model_parameters: {}\nmodel_route: \"chat\"\nprompt_parameters:\n  \"x\": \"a: b\"\nprompt_template: \"Say {{ x }}: \\\"hi\\\"\"\n"
        );
    }
}
