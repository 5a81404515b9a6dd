"""MLflow 3's issues API (``/api/3.0/mlflow/issues``): problems found in an experiment's
traces, created, read, updated and searched as MLflow's server does it."""

import time

import mlflow

ISSUES = "/api/3.0/mlflow/issues"


def _create(api, experiment_id, name, **fields):
    resp = api.post(ISSUES, json={
        "experiment_id": experiment_id, "name": name, "description": f"about {name}", **fields,
    })
    assert resp.status_code == 200, resp.text
    return resp.json()["issue"]


def test_an_issue_is_created_read_and_updated(experiment_id, client, api):
    run = client.create_run(experiment_id)
    issue = _create(api, experiment_id, "High latency", status="pending", severity="high",
                    source_run_id=run.info.run_id, root_causes=["slow query", "network"],
                    categories=["performance"], created_by="tester")
    assert issue["issue_id"].startswith("iss-")
    assert issue["experiment_id"] == experiment_id
    assert issue["root_causes"] == ["slow query", "network"]
    assert issue["categories"] == ["performance"]
    assert issue["severity"] == "high"
    assert int(issue["created_timestamp"]) == int(issue["last_updated_timestamp"])

    read = api.get(f"{ISSUES}/{issue['issue_id']}").json()["issue"]
    assert read == issue

    time.sleep(0.01)
    updated = api.patch(f"{ISSUES}/{issue['issue_id']}", json={
        "issue_id": issue["issue_id"], "status": "resolved", "name": "",
    }).json()["issue"]
    assert updated["status"] == "resolved"
    assert updated["name"] == "High latency"
    assert int(updated["last_updated_timestamp"]) > int(issue["last_updated_timestamp"])


def test_issue_requests_that_cannot_be_served_are_refused(experiment_id, api, check):
    check.assert_error(
        api.post(ISSUES, json={"experiment_id": "987654321", "name": "x", "description": "y"}),
        404, "RESOURCE_DOES_NOT_EXIST")
    check.assert_error(api.get(f"{ISSUES}/iss-missing"), 404, "RESOURCE_DOES_NOT_EXIST")
    check.assert_error(api.post(ISSUES, json={"experiment_id": experiment_id, "name": "x"}),
                       400, "INVALID_PARAMETER_VALUE")
    check.assert_error(
        api.post(f"{ISSUES}/search",
                 json={"experiment_id": experiment_id, "filter_string": "name = 'x'"}),
        400, "INVALID_PARAMETER_VALUE")


def test_issue_search_filters_orders_by_severity_and_pages(experiment_id, api):
    low = _create(api, experiment_id, "minor", severity="low")
    high = _create(api, experiment_id, "major", severity="high", status="resolved")
    plain = [_create(api, experiment_id, f"plain {i}") for i in range(3)]

    def search(**body):
        resp = api.post(f"{ISSUES}/search", json={"experiment_id": experiment_id, **body})
        assert resp.status_code == 200, resp.text
        return resp.json()

    everything = search()
    ids = [i["issue_id"] for i in everything["issues"]]
    assert ids[:2] == [high["issue_id"], low["issue_id"]]
    assert set(ids[2:]) == {p["issue_id"] for p in plain}
    assert everything["next_page_token"] == ""

    resolved = search(filter_string="status = 'resolved'")["issues"]
    assert [i["issue_id"] for i in resolved] == [high["issue_id"]]
    pending = search(filter_string="status != 'resolved'")["issues"]
    assert high["issue_id"] not in {i["issue_id"] for i in pending}

    first = search(max_results=2)
    assert len(first["issues"]) == 2 and first["next_page_token"]
    rest = search(max_results=2, page_token=first["next_page_token"])
    second = search(max_results=2, page_token=rest["next_page_token"])
    assert len(rest["issues"]) == 2 and len(second["issues"]) == 1
    assert second["next_page_token"] == ""


def test_issue_search_counts_the_traces_an_issue_touches(experiment_id, api):
    issue = _create(api, experiment_id, "hallucination")
    trace_ids = []
    for _ in range(2):
        with mlflow.start_span(name="answer"):
            pass
        trace_ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    for trace_id in trace_ids:
        resp = api.post(f"/api/3.0/mlflow/traces/{trace_id}/assessments", json={"assessment": {
            "assessment_name": issue["issue_id"],
            "issue": {"issue_name": "hallucination"},
            "source": {"source_type": "HUMAN", "source_id": "reviewer"},
        }})
        assert resp.status_code == 200, resp.text
    found = api.post(f"{ISSUES}/search", json={
        "experiment_id": experiment_id, "include_trace_count": True,
    }).json()["issues"]
    assert [(i["issue_id"], int(i["trace_count"])) for i in found] == [(issue["issue_id"], 2)]
