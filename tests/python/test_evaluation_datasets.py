"""MLflow 3 evaluation datasets (``mlflow.genai.datasets``) through the real client: datasets
with tags and experiments, records merged by their inputs, search, and the REST answers the
client relies on (record pages, errors)."""

import json

import pytest

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.genai import datasets

V3 = "/api/3.0/mlflow/datasets"


def own_tags(dataset):
    """The dataset's tags without the ``mlflow.user`` tag the client adds."""
    return {k: v for k, v in dataset.tags.items() if k != "mlflow.user"}


@pytest.fixture
def two_experiments(unique_name):
    return [mlflow.create_experiment(unique_name("evals")) for _ in range(2)]


def test_a_dataset_is_created_with_tags_and_experiments_and_read_back(two_experiments, unique_name):
    name = unique_name("qa")
    created = datasets.create_dataset(
        name=name, experiment_id=two_experiments, tags={"team": "ml", "version": "1"}
    )
    assert created.dataset_id.startswith("d-")
    assert created.name == name
    assert own_tags(created) == {"team": "ml", "version": "1"}
    assert created.created_by == created.tags["mlflow.user"]
    assert sorted(created.experiment_ids) == sorted(two_experiments)

    got = datasets.get_dataset(dataset_id=created.dataset_id)
    assert (got.name, got.tags, got.digest) == (name, created.tags, created.digest)
    assert sorted(got.experiment_ids) == sorted(two_experiments)
    assert got.to_df().empty


def test_records_merge_by_their_inputs(experiment_id, unique_name):
    dataset = datasets.create_dataset(name=unique_name("merge"), experiment_id=experiment_id)
    digest = dataset.digest
    dataset.merge_records(
        [
            {
                "inputs": {"question": "What is MLflow?"},
                "expectations": {"answer": "A platform"},
                "tags": {"difficulty": "easy"},
            },
            {"inputs": {"question": "What is Python?"}, "expectations": {"answer": "A language"}},
        ]
    )
    dataset.merge_records(
        [
            # The same inputs: expectations and tags merge into the stored record.
            {
                "inputs": {"question": "What is MLflow?"},
                "expectations": {"source": "docs"},
                "tags": {"reviewed": "yes"},
            },
            {"inputs": {"question": "What is Docker?"}},
        ]
    )
    df = dataset.to_df()
    assert len(df) == 3
    by_question = {row["inputs"]["question"]: row for _, row in df.iterrows()}
    mlflow_row = by_question["What is MLflow?"]
    assert mlflow_row["expectations"] == {"answer": "A platform", "source": "docs"}
    assert mlflow_row["tags"]["difficulty"] == "easy"
    assert mlflow_row["tags"]["reviewed"] == "yes"
    assert mlflow_row["source_type"] == "HUMAN"
    assert by_question["What is Docker?"]["source_type"] == "CODE"
    assert all(str(i).startswith("dr-") for i in df["dataset_record_id"])

    stored = datasets.get_dataset(dataset_id=dataset.dataset_id)
    assert stored.digest != digest
    assert json.loads(stored.profile) == {"num_records": 3}
    assert json.loads(stored.schema) == {
        "inputs": {"question": "string"},
        "outputs": {},
        "expectations": {"answer": "string", "source": "string"},
        "version": "1.0",
    }


def test_upserts_answer_inserted_and_updated_counts(experiment_id, unique_name, api):
    dataset = datasets.create_dataset(name=unique_name("counts"), experiment_id=experiment_id)
    path = f"{V3}/{dataset.dataset_id}/records"
    records = [{"inputs": {"q": "a", "n": 1}}, {"inputs": {"q": "b"}, "outputs": "plain"}]
    first = api.post(path, json={"records": json.dumps(records)})
    assert first.status_code == 200, first.text
    assert first.json() == {"inserted_count": 2, "updated_count": 0}
    # Key order does not make inputs different.
    same_and_new = [{"inputs": {"n": 1, "q": "a"}}, {"inputs": {"q": "c"}}]
    again = api.post(path, json={"records": json.dumps(same_and_new)})
    assert again.json() == {"inserted_count": 1, "updated_count": 1}


def test_records_are_listed_in_pages(experiment_id, unique_name, api):
    dataset = datasets.create_dataset(name=unique_name("pages"), experiment_id=experiment_id)
    dataset.merge_records([{"inputs": {"i": i}} for i in range(5)])
    path = f"{V3}/{dataset.dataset_id}/records"
    seen, token = [], None
    while True:
        params = {"max_results": 2, **({"page_token": token} if token else {})}
        page = api.get(path, params=params).json()
        seen += [r["inputs"]["i"] for r in json.loads(page["records"])]
        token = page.get("next_page_token")
        if not token:
            break
    assert sorted(seen) == list(range(5))
    assert len(dataset.to_df()) == 5


def test_datasets_are_searched_by_experiment_tag_and_name(two_experiments, unique_name):
    e1, e2 = two_experiments
    team = unique_name("team")
    a = datasets.create_dataset(name=unique_name("a"), experiment_id=e1, tags={"team": team})
    b = datasets.create_dataset(
        name=unique_name("b"), experiment_id=[e1, e2], tags={"team": "other"}
    )
    c = datasets.create_dataset(name=unique_name("c"), experiment_id=e2, tags={"team": team})

    def ids(found):
        return {d.dataset_id for d in found}

    assert ids(datasets.search_datasets(experiment_ids=e1)) == {a.dataset_id, b.dataset_id}
    everything = {a.dataset_id, b.dataset_id, c.dataset_id}
    assert ids(datasets.search_datasets(experiment_ids=[e1, e2])) == everything
    by_team = datasets.search_datasets(filter_string=f"tags.team = '{team}'")
    assert ids(by_team) == {a.dataset_id, c.dataset_id}
    assert ids(datasets.search_datasets(filter_string=f"name = '{b.name}'")) == {b.dataset_id}
    ordered = datasets.search_datasets(experiment_ids=[e1, e2], order_by=["name DESC"])
    assert [d.name for d in ordered] == sorted([a.name, b.name, c.name], reverse=True)
    with pytest.raises(MlflowException, match="Invalid attribute key 'nope'"):
        datasets.search_datasets(filter_string="nope = 'x'")


def test_tags_are_set_and_deleted(experiment_id, unique_name):
    dataset = datasets.create_dataset(
        name=unique_name("tags"), experiment_id=experiment_id, tags={"keep": "1", "env": "dev"}
    )
    datasets.set_dataset_tags(dataset_id=dataset.dataset_id, tags={"env": "prod", "new": "x"})
    datasets.delete_dataset_tag(dataset_id=dataset.dataset_id, key="new")
    # Deleting a tag that is not there is no error.
    datasets.delete_dataset_tag(dataset_id=dataset.dataset_id, key="new")
    assert own_tags(datasets.get_dataset(dataset_id=dataset.dataset_id)) == {"keep": "1", "env": "prod"}


def test_datasets_join_and_leave_experiments(unique_name):
    exps = [mlflow.create_experiment(unique_name("assoc")) for _ in range(3)]
    dataset = datasets.create_dataset(name=unique_name("assoc"), experiment_id=exps[0])
    added = datasets.add_dataset_to_experiments(dataset.dataset_id, experiment_ids=exps[1:] + exps[:1])
    assert sorted(added.experiment_ids) == sorted(exps)
    removed = datasets.remove_dataset_from_experiments(dataset.dataset_id, experiment_ids=[exps[1]])
    assert sorted(removed.experiment_ids) == sorted([exps[0], exps[2]])
    with pytest.raises(MlflowException, match="No Experiment with id=987654321"):
        datasets.add_dataset_to_experiments(dataset.dataset_id, experiment_ids=["987654321"])
    with pytest.raises(MlflowException, match="not found"):
        datasets.add_dataset_to_experiments("d-00000000000000000000000000000000", experiment_ids=exps[:1])


def test_a_deleted_dataset_is_gone(experiment_id, unique_name):
    dataset = datasets.create_dataset(name=unique_name("gone"), experiment_id=experiment_id)
    dataset.merge_records([{"inputs": {"q": "x"}}])
    datasets.delete_dataset(dataset_id=dataset.dataset_id)
    with pytest.raises(MlflowException, match="not found"):
        datasets.get_dataset(dataset_id=dataset.dataset_id)
    assert datasets.search_datasets(experiment_ids=experiment_id) == []


def test_missing_datasets_are_client_errors(api, check):
    missing = "d-00000000000000000000000000000000"
    check.assert_error(api.get(f"{V3}/{missing}"), 404, "RESOURCE_DOES_NOT_EXIST")
    set_tags = api.patch(f"{V3}/{missing}/tags", json={"tags": json.dumps({"a": "b"})})
    check.assert_error(set_tags, 404, "RESOURCE_DOES_NOT_EXIST")
    upsert = api.post(f"{V3}/{missing}/records", json={"records": json.dumps([{"inputs": {"q": 1}}])})
    check.assert_not_5xx(upsert)
    assert 400 <= upsert.status_code < 500
    no_name = api.post(f"{V3}/create", json={"experiment_ids": ["0"]})
    check.assert_error(no_name, 400, "INVALID_PARAMETER_VALUE")
    bad_filter = api.post(f"{V3}/search", json={"filter_string": "tags.a < 'x'"})
    check.assert_error(bad_filter, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.mlox_only
def test_malformed_records_and_tags_are_400_not_500(experiment_id, unique_name, api, check):
    dataset = datasets.create_dataset(name=unique_name("bad"), experiment_id=experiment_id)
    path = f"{V3}/{dataset.dataset_id}/records"
    for records in ["not json", json.dumps({"inputs": {}}), json.dumps([{"inputs": [1]}]),
                    json.dumps([{"inputs": {}, "source": "x"}])]:
        check.assert_error(api.post(path, json={"records": records}), 400, "INVALID_PARAMETER_VALUE")
    not_an_object = api.post(f"{V3}/create", json={"name": "x", "tags": "[1]"})
    check.assert_error(not_an_object, 400, "INVALID_PARAMETER_VALUE")
