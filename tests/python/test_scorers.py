"""MLflow 3's scorer registry: versions of a named scorer per experiment, registered, listed,
read and deleted the way the client's store calls do it."""

import json

import pytest

from mlflow.exceptions import MlflowException


@pytest.fixture
def store(client):
    return client._tracking_client.store


def test_scorer_versions_are_registered_listed_and_deleted(experiment_id, store):
    first = store.register_scorer(experiment_id, "relevance", json.dumps({"name": "relevance"}))
    assert first.scorer_version == 1
    second = store.register_scorer(experiment_id, "relevance",
                                   json.dumps({"name": "relevance", "v": 2}))
    assert second.scorer_version == 2
    assert second.scorer_id == first.scorer_id
    store.register_scorer(experiment_id, "brevity", json.dumps({"name": "brevity"}))

    latest = {s.scorer_name: s.scorer_version for s in store.list_scorers(experiment_id)}
    assert latest == {"relevance": 2, "brevity": 1}
    versions = store.list_scorer_versions(experiment_id, "relevance")
    assert [v.scorer_version for v in versions] == [1, 2]
    assert json.loads(store.get_scorer(experiment_id, "relevance")._serialized_scorer)["v"] == 2
    assert store.get_scorer(experiment_id, "relevance", version=1).scorer_version == 1

    store.delete_scorer(experiment_id, "relevance", version=1)
    assert [v.scorer_version for v in store.list_scorer_versions(experiment_id, "relevance")] == [2]
    store.delete_scorer(experiment_id, "relevance")
    assert [s.scorer_name for s in store.list_scorers(experiment_id)] == ["brevity"]
    with pytest.raises(MlflowException, match="not found"):
        store.get_scorer(experiment_id, "relevance")
    with pytest.raises(MlflowException, match="version 7 not found"):
        store.get_scorer(experiment_id, "brevity", version=7)


def test_custom_scorer_code_is_refused(experiment_id, api, check):
    resp = api.post("/api/3.0/mlflow/scorers/register", json={
        "experiment_id": experiment_id, "name": "custom",
        "serialized_scorer": json.dumps({"name": "custom", "call_source": "return 1"}),
    })
    check.assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
    resp = api.post("/api/3.0/mlflow/scorers/register", json={
        "experiment_id": experiment_id, "name": "broken", "serialized_scorer": "not json",
    })
    check.assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
