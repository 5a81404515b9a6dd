"""Run and experiment search: the filter/order/paging grammar real users send.

The data is a hyper-parameter search (a parent run with nested trials), as a
pipeline step would log it, plus runs created with explicit start times where
ordering must be deterministic.
"""

import time

import pandas as pd
import pytest

import mlflow
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

ALPHAS = [0.01, 0.1, 0.5, 1.0]
RMSES = [0.71, 0.55, 0.93, 1.42]


@pytest.fixture
def hp_search(experiment_id):
    """Parent "Hyperparameters_Search" with 4 nested trials; returns ids."""
    children = []
    with mlflow.start_run(run_name="Hyperparameters_Search") as parent:
        mlflow.log_param("n_trials", len(ALPHAS))
        for i, (alpha, rmse) in enumerate(zip(ALPHAS, RMSES)):
            with mlflow.start_run(run_name=f"trial-{i}", nested=True) as child:
                mlflow.log_params({"alpha": alpha, "max_depth": 3 + i})
                mlflow.log_metric("rmse", rmse)
                mlflow.set_tag("trial", str(i))
                children.append(child.info.run_id)
        mlflow.log_metric("best_rmse", min(RMSES))
        mlflow.log_params({"alpha": ALPHAS[RMSES.index(min(RMSES))], "max_depth": 4})
    return {"experiment_id": experiment_id, "parent": parent.info.run_id, "children": children}


def _ids(runs):
    if isinstance(runs, pd.DataFrame):
        return list(runs["run_id"])
    return [r.info.run_id for r in runs]


# ----------------------------------------------------------------- nested runs


def test_nested_runs_carry_parent_run_id_tag(hp_search, client):
    for child in hp_search["children"]:
        run = client.get_run(child)
        assert run.data.tags["mlflow.parentRunId"] == hp_search["parent"]
        assert run.info.status == "FINISHED"
    parent = client.get_run(hp_search["parent"])
    assert "mlflow.parentRunId" not in parent.data.tags
    assert parent.data.tags["mlflow.runName"] == "Hyperparameters_Search"
    assert parent.info.run_name == "Hyperparameters_Search"


def test_search_children_by_parent_run_id(hp_search):
    df = mlflow.search_runs(
        [hp_search["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{hp_search['parent']}'",
    )
    assert sorted(df["run_id"]) == sorted(hp_search["children"])
    assert set(df["tags.mlflow.parentRunId"]) == {hp_search["parent"]}


def test_pipeline_picks_latest_finished_run_by_name_and_reads_its_params(hp_search):
    """The model-training step of the pipeline: find the last finished tuning run,
    turn its ``params.*`` columns back into a dict."""
    exp = hp_search["experiment_id"]
    last_tuning_run = mlflow.search_runs(
        experiment_ids=[exp],
        filter_string="tags.mlflow.runName = 'Hyperparameters_Search' and status = 'FINISHED'",
        order_by=["start_time DESC"],
    ).loc[0, :]
    assert last_tuning_run["run_id"] == hp_search["parent"]
    params = {col.split(".")[1]: last_tuning_run[col] for col in last_tuning_run.index if "params" in col}
    # columns exist for every param key in the result set; the parent lacks none of them
    assert params == {"alpha": "0.1", "max_depth": "4", "n_trials": "4"}
    assert last_tuning_run["metrics.best_rmse"] == pytest.approx(0.55)


def test_latest_finished_run_by_name_ignores_failed_and_older_runs(experiment_id, client):
    names = []
    for status in ("FINISHED", "FINISHED", "FAILED"):
        with mlflow.start_run(run_name="Data_Preprocessing") as run:
            pass
        if status == "FAILED":
            client.set_terminated(run.info.run_id, status="FAILED")
        names.append(run.info.run_id)
        time.sleep(0.02)  # distinct start times
    latest = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="tags.mlflow.runName = 'Data_Preprocessing' and status = 'FINISHED'",
        order_by=["start_time DESC"],
    )
    assert list(latest["run_id"]) == [names[1], names[0]]
    assert latest.loc[0, "run_id"] == names[1]
    assert set(latest["status"]) == {"FINISHED"}
    failed = mlflow.search_runs([experiment_id], filter_string="attributes.status = 'FAILED'")
    assert list(failed["run_id"]) == [names[2]]
    not_finished = mlflow.search_runs([experiment_id], filter_string="status != 'FINISHED'")
    assert list(not_finished["run_id"]) == [names[2]]


# ----------------------------------------------------------------- comparators


def test_metric_filters(hp_search):
    exp = [hp_search["experiment_id"]]
    c = hp_search["children"]
    below_one = mlflow.search_runs(exp, filter_string="metrics.rmse < 1", order_by=["metrics.rmse ASC"])
    assert list(below_one["run_id"]) == [c[1], c[0], c[2]]
    assert list(below_one["metrics.rmse"]) == [0.55, 0.71, 0.93]
    assert _ids(mlflow.search_runs(exp, "metrics.rmse >= 0.93", output_format="list")) != []
    assert sorted(_ids(mlflow.search_runs(exp, "metrics.rmse >= 0.93"))) == sorted([c[2], c[3]])
    assert _ids(mlflow.search_runs(exp, "metrics.rmse = 0.55")) == [c[1]]
    assert sorted(_ids(mlflow.search_runs(exp, "metrics.rmse != 0.55"))) == sorted([c[0], c[2], c[3]])
    assert _ids(mlflow.search_runs(exp, "metrics.rmse > 1 and metrics.rmse <= 1.42")) == [c[3]]
    # a metric nobody logged matches nothing (and is not an error)
    assert _ids(mlflow.search_runs(exp, "metrics.nope < 1")) == []


def test_param_and_tag_filters(hp_search):
    exp = [hp_search["experiment_id"]]
    c = hp_search["children"]
    p = hp_search["parent"]
    # params are strings; the parent also has alpha=0.1
    assert sorted(_ids(mlflow.search_runs(exp, "params.alpha = '0.1'"))) == sorted([c[1], p])
    assert _ids(mlflow.search_runs(exp, "params.alpha = '0.1' and tags.trial = '1'")) == [c[1]]
    assert sorted(_ids(mlflow.search_runs(exp, "params.max_depth != '4'"))) == sorted([c[0], c[2], c[3]])
    assert _ids(mlflow.search_runs(exp, "tags.trial = '3'")) == [c[3]]
    assert _ids(mlflow.search_runs(exp, 'tags.trial = "3"')) == [c[3]]  # double quotes too
    assert sorted(_ids(mlflow.search_runs(exp, "params.alpha LIKE '0.%'"))) == sorted([c[0], c[1], c[2], p])
    assert _ids(mlflow.search_runs(exp, "tags.mlflow.runName = 'trial-2'")) == [c[2]]


def test_order_by_metric_asc_and_desc(hp_search):
    exp = [hp_search["experiment_id"]]
    c = hp_search["children"]
    flt = f"tags.mlflow.parentRunId = '{hp_search['parent']}'"
    asc = mlflow.search_runs(exp, flt, order_by=["metrics.rmse ASC"])
    desc = mlflow.search_runs(exp, flt, order_by=["metrics.rmse DESC"])
    assert list(asc["run_id"]) == [c[1], c[0], c[2], c[3]]
    assert list(desc["run_id"]) == [c[3], c[2], c[0], c[1]]
    # default direction is ascending
    assert list(mlflow.search_runs(exp, flt, order_by=["metrics.rmse"])["run_id"]) == list(asc["run_id"])


def test_order_by_metric_puts_runs_without_it_last(hp_search):
    exp = [hp_search["experiment_id"]]
    c = hp_search["children"]
    for direction in ("ASC", "DESC"):
        ids = _ids(mlflow.search_runs(exp, order_by=[f"metrics.rmse {direction}"]))
        assert ids[-1] == hp_search["parent"], direction
        assert sorted(ids[:-1]) == sorted(c)


def test_order_by_param_and_name(hp_search):
    exp = [hp_search["experiment_id"]]
    c = hp_search["children"]
    flt = "attributes.run_name LIKE 'trial-%'"
    by_name_desc = mlflow.search_runs(exp, flt, order_by=["attributes.run_name DESC"])
    assert list(by_name_desc["run_id"]) == [c[3], c[2], c[1], c[0]]
    by_param = mlflow.search_runs(exp, flt, order_by=["params.max_depth DESC"])
    assert list(by_param["run_id"]) == [c[3], c[2], c[1], c[0]]
    by_tag = mlflow.search_runs(exp, flt, order_by=["tags.trial ASC"])
    assert list(by_tag["run_id"]) == c


def test_run_name_like_and_ilike(hp_search):
    exp = [hp_search["experiment_id"]]
    c = hp_search["children"]
    assert sorted(_ids(mlflow.search_runs(exp, "attributes.run_name LIKE 'trial-%'"))) == sorted(c)
    # LIKE is case-sensitive, ILIKE is not
    assert _ids(mlflow.search_runs(exp, "attributes.run_name LIKE 'TRIAL-%'")) == []
    assert sorted(_ids(mlflow.search_runs(exp, "attributes.run_name ILIKE 'TRIAL-%'"))) == sorted(c)
    assert _ids(mlflow.search_runs(exp, "run_name = 'trial-0'")) == [c[0]]
    assert _ids(mlflow.search_runs(exp, "attributes.run_name LIKE '%_2'")) == [c[2]]
    assert _ids(mlflow.search_runs(exp, "tags.mlflow.runName ILIKE '%search'")) == [hp_search["parent"]]


def test_run_id_in(hp_search):
    exp = [hp_search["experiment_id"]]
    c = hp_search["children"]
    flt = f"attributes.run_id IN ('{c[0]}', '{c[3]}')"
    assert sorted(_ids(mlflow.search_runs(exp, flt))) == sorted([c[0], c[3]])
    flt = f"attributes.run_id NOT IN ('{c[0]}', '{c[3]}')"
    assert sorted(_ids(mlflow.search_runs(exp, flt))) == sorted([c[1], c[2], hp_search["parent"]])
    assert _ids(mlflow.search_runs(exp, f"run_id = '{c[2]}'")) == [c[2]]


def test_start_time_and_end_time_filters(experiment_id, client):
    base = 1_700_000_000_000
    ids = []
    for i in range(3):
        run = client.create_run(experiment_id, start_time=base + i * 1000, run_name=f"t{i}")
        client.set_terminated(run.info.run_id, end_time=base + i * 1000 + 500)
        ids.append(run.info.run_id)
    exp = [experiment_id]
    assert _ids(mlflow.search_runs(exp, f"attributes.start_time > {base}", order_by=["start_time ASC"])) == ids[1:]
    assert _ids(mlflow.search_runs(exp, f"attributes.start_time >= {base}", order_by=["start_time ASC"])) == ids
    assert _ids(mlflow.search_runs(exp, f"attributes.start_time < {base + 1000}")) == [ids[0]]
    assert _ids(mlflow.search_runs(exp, f"attributes.end_time = {base + 2500}")) == [ids[2]]
    assert _ids(mlflow.search_runs(exp, order_by=["start_time DESC"])) == ids[::-1]
    # default order is start_time DESC
    assert _ids(client.search_runs(exp)) == ids[::-1]
    run = client.get_run(ids[1])
    assert run.info.start_time == base + 1000
    assert run.info.end_time == base + 1500


def test_datasets_filters(experiment_id):
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    ds_a = mlflow.data.from_pandas(df, name="ds-a")
    ds_b = mlflow.data.from_pandas(df.assign(b=1), name="ds-b")
    with mlflow.start_run() as r1:
        mlflow.log_input(ds_a, context="training")
    with mlflow.start_run() as r2:
        mlflow.log_input(ds_b, context="eval")
    with mlflow.start_run():
        pass
    exp = [experiment_id]
    assert _ids(mlflow.search_runs(exp, "datasets.name = 'ds-a'")) == [r1.info.run_id]
    assert _ids(mlflow.search_runs(exp, f"datasets.digest = '{ds_b.digest}'")) == [r2.info.run_id]
    assert _ids(mlflow.search_runs(exp, "datasets.context = 'eval'")) == [r2.info.run_id]
    assert sorted(_ids(mlflow.search_runs(exp, "datasets.name IN ('ds-a', 'ds-b')"))) == sorted(
        [r1.info.run_id, r2.info.run_id]
    )


def test_back_quoted_keys(experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_param("learning rate", "0.1")
        mlflow.log_metric("val loss", 0.25)
        mlflow.set_tag("team.name", "vision")
    with mlflow.start_run():
        mlflow.log_param("learning rate", "0.2")
    exp = [experiment_id]
    rid = run.info.run_id
    assert _ids(mlflow.search_runs(exp, "params.`learning rate` = '0.1'")) == [rid]
    assert _ids(mlflow.search_runs(exp, "metrics.`val loss` < 0.5")) == [rid]
    assert _ids(mlflow.search_runs(exp, "tags.`team.name` = 'vision'")) == [rid]
    assert _ids(mlflow.search_runs(exp, "tags.team.name = 'vision'")) == [rid]
    df = mlflow.search_runs(exp, order_by=["params.`learning rate` DESC"])
    assert list(df["params.learning rate"]) == ["0.2", "0.1"]


def test_search_over_several_experiments(unique_name, client):
    e1 = client.create_experiment(unique_name("multi"))
    e2 = client.create_experiment(unique_name("multi"))
    r1 = client.create_run(e1).info.run_id
    r2 = client.create_run(e2).info.run_id
    got = client.search_runs([e1, e2])
    assert sorted(_ids(got)) == sorted([r1, r2])
    assert {r.info.experiment_id for r in got} == {e1, e2}


# ----------------------------------------------------------------- paging


def test_paging_with_max_results_and_page_token(experiment_id, client):
    base = 1_600_000_000_000
    created = [
        client.create_run(experiment_id, start_time=base + i).info.run_id for i in range(7)
    ]
    expected = created[::-1]  # start_time DESC
    pages = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=3, page_token=token)
        pages.append(_ids(page))
        token = page.token
        if not token:
            break
    assert pages == [expected[0:3], expected[3:6], expected[6:7]]

    # an exactly full last page may or may not hand out a token, but the next page is empty
    first = client.search_runs([experiment_id], max_results=7)
    assert _ids(first) == expected
    if first.token:
        assert _ids(client.search_runs([experiment_id], max_results=7, page_token=first.token)) == []

    # paging composes with filter and order_by
    asc = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"], max_results=4)
    assert _ids(asc) == created[:4]
    rest = client.search_runs(
        [experiment_id], order_by=["attributes.start_time ASC"], max_results=4, page_token=asc.token
    )
    assert _ids(rest) == created[4:]
    assert not rest.token


# ----------------------------------------------------------------- view types


def test_run_view_types_after_delete_and_restore(experiment_id, client):
    keep = client.create_run(experiment_id).info.run_id
    gone = client.create_run(experiment_id).info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    exp = [experiment_id]
    assert _ids(client.search_runs(exp)) == [keep]  # ACTIVE_ONLY is the default
    assert _ids(client.search_runs(exp, run_view_type=ViewType.ACTIVE_ONLY)) == [keep]
    assert _ids(client.search_runs(exp, run_view_type=ViewType.DELETED_ONLY)) == [gone]
    assert sorted(_ids(client.search_runs(exp, run_view_type=ViewType.ALL))) == sorted([keep, gone])
    df = mlflow.search_runs(exp, run_view_type=ViewType.DELETED_ONLY)
    assert list(df["run_id"]) == [gone]

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert sorted(_ids(client.search_runs(exp))) == sorted([keep, gone])
    assert _ids(client.search_runs(exp, run_view_type=ViewType.DELETED_ONLY)) == []


# ----------------------------------------------------------------- experiments


@pytest.fixture
def three_experiments(unique_name, client):
    prefix = unique_name("sx")
    ids = {}
    for suffix, team in (("a", "vision"), ("b", "nlp"), ("c", "vision")):
        ids[suffix] = client.create_experiment(f"{prefix}-{suffix}", tags={"team": team})
    return prefix, ids


def _exp_ids(exps):
    return [e.experiment_id for e in exps]


def test_search_experiments_filter_and_order(three_experiments, client):
    prefix, ids = three_experiments
    got = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert _exp_ids(got) == [ids["a"], ids["b"], ids["c"]]
    got = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert _exp_ids(got) == [ids["c"], ids["b"], ids["a"]]
    got = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%' AND tags.team = 'vision'", order_by=["name ASC"]
    )
    assert _exp_ids(got) == [ids["a"], ids["c"]]
    got = client.search_experiments(filter_string=f"name = '{prefix}-b'")
    assert _exp_ids(got) == [ids["b"]]
    assert got[0].tags["team"] == "nlp"
    got = client.search_experiments(filter_string=f"name ILIKE '{prefix.upper()}-%'")
    assert sorted(_exp_ids(got)) == sorted(ids.values())
    got = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%'", order_by=["creation_time DESC"]
    )
    assert len(got) == 3
    assert [e.creation_time for e in got] == sorted((e.creation_time for e in got), reverse=True)
    # fluent API, same filter grammar
    fluent = mlflow.search_experiments(filter_string=f"name LIKE '{prefix}-%' and tags.team != 'vision'")
    assert _exp_ids(fluent) == [ids["b"]]


def test_search_experiments_paging(three_experiments, client):
    prefix, ids = three_experiments
    flt = f"name LIKE '{prefix}-%'"
    page1 = client.search_experiments(filter_string=flt, order_by=["name ASC"], max_results=2)
    assert _exp_ids(page1) == [ids["a"], ids["b"]]
    assert page1.token
    page2 = client.search_experiments(
        filter_string=flt, order_by=["name ASC"], max_results=2, page_token=page1.token
    )
    assert _exp_ids(page2) == [ids["c"]]
    assert not page2.token


def test_experiment_view_types_after_delete_and_restore(three_experiments, client):
    prefix, ids = three_experiments
    flt = f"name LIKE '{prefix}-%'"
    client.delete_experiment(ids["b"])
    assert client.get_experiment(ids["b"]).lifecycle_stage == "deleted"
    active = client.search_experiments(filter_string=flt, order_by=["name ASC"])
    assert _exp_ids(active) == [ids["a"], ids["c"]]
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=flt)
    assert _exp_ids(deleted) == [ids["b"]]
    every = client.search_experiments(view_type=ViewType.ALL, filter_string=flt, order_by=["name ASC"])
    assert _exp_ids(every) == [ids["a"], ids["b"], ids["c"]]
    # a deleted experiment is still readable by id and by name
    assert client.get_experiment_by_name(f"{prefix}-b").experiment_id == ids["b"]

    client.restore_experiment(ids["b"])
    assert client.get_experiment(ids["b"]).lifecycle_stage == "active"
    assert len(client.search_experiments(filter_string=flt)) == 3
    assert client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=flt) == []


def test_runs_of_deleted_experiment_are_not_searchable_as_active(unique_name, client):
    exp = client.create_experiment(unique_name("delexp"))
    run = client.create_run(exp).info.run_id
    client.delete_experiment(exp)
    # deleting an experiment soft-deletes its runs
    assert client.get_run(run).info.lifecycle_stage == "deleted"
    assert _ids(client.search_runs([exp], run_view_type=ViewType.DELETED_ONLY)) == [run]
    client.restore_experiment(exp)
    assert client.get_run(run).info.lifecycle_stage == "active"


def test_bad_filter_raises_invalid_parameter_value(experiment_id):
    with pytest.raises(MlflowException) as ei:
        mlflow.search_runs([experiment_id], filter_string="metrics.rmse <<< 1")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as ei:
        mlflow.search_runs([experiment_id], order_by=["metrics.rmse SIDEWAYS"])
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
