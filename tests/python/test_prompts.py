"""The prompt registry of MLflow 3 (`mlflow.genai.register_prompt` and friends): prompts are
registered models tagged as prompts, their versions carry the template in tags and a placeholder
source, and the two kinds never show up in each other's searches."""

import pytest

import mlflow
from mlflow.exceptions import MlflowException


def test_prompts_are_registered_loaded_by_version_and_alias(unique_name, client):
    name = unique_name("greet")
    first = mlflow.genai.register_prompt(name=name, template="Hello {{name}}!",
                                         commit_message="first")
    assert first.version == 1
    chat = mlflow.genai.register_prompt(
        name=name, template=[{"role": "user", "content": "Hi {{name}}"}])
    assert chat.version == 2

    assert mlflow.genai.load_prompt(f"prompts:/{name}/1").format(name="Ann") == "Hello Ann!"
    assert mlflow.genai.load_prompt(f"prompts:/{name}/2").format(name="Bo") == [
        {"role": "user", "content": "Hi Bo"}
    ]
    mlflow.genai.set_prompt_alias(name, alias="prod", version=1)
    assert mlflow.genai.load_prompt(f"prompts:/{name}@prod").version == 1
    mlflow.genai.delete_prompt_alias(name, "prod")
    with pytest.raises(MlflowException):
        mlflow.genai.load_prompt(f"prompts:/{name}@prod")


def test_prompts_and_models_stay_apart_in_searches(unique_name, client):
    prompt = unique_name("prompt")
    model = unique_name("model")
    mlflow.genai.register_prompt(name=prompt, template="Summarize {{text}}")
    client.create_registered_model(model)
    assert prompt in [p.name for p in mlflow.genai.search_prompts(f"name = '{prompt}'")]
    assert model not in [p.name for p in mlflow.genai.search_prompts()]
    models = [m.name for m in client.search_registered_models()]
    assert model in models and prompt not in models


def test_a_prompt_version_needs_a_placeholder_source(unique_name, api, check):
    name = unique_name("raw")
    created = api.post("/api/2.0/mlflow/registered-models/create", json={
        "name": name, "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}],
    })
    assert created.status_code == 200, created.text
    resp = api.post("/api/2.0/mlflow/model-versions/create", json={
        "name": name, "source": "s3://bucket/elsewhere",
        "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"},
                 {"key": "mlflow.prompt.text", "value": "Hi"}],
    })
    check.assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert "Invalid prompt source" in resp.json()["message"]
