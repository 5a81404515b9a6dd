"""``mlflow.genai.evaluate`` end to end, offline: deterministic predict functions and custom
``@scorer``s instead of LLM judges. The evaluation run gets its metrics, each row becomes a
trace linked to the run, with the scorers' feedback and the row's expectations attached, and a
stored evaluation dataset can be what is evaluated.
"""

from __future__ import annotations

import uuid

import pytest

import mlflow
from mlflow.genai.scorers import scorer

pytestmark = pytest.mark.traces


@scorer
def exact_match(outputs, expectations):
    return outputs == expectations["expected"]


@scorer
def answer_length(outputs):
    return len(outputs)


def shout(question):
    return question.upper()


ROWS = [
    {"inputs": {"question": "ok"}, "expectations": {"expected": "OK"}},
    {"inputs": {"question": "no"}, "expectations": {"expected": "yes"}},
    {"inputs": {"question": "four"}, "expectations": {"expected": "FOUR"}},
]


def _assessments(trace):
    return {a.name: a.value for a in trace.info.assessments}


def test_an_evaluation_run_holds_metrics_traces_and_feedback(tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(f"genai-eval-{uuid.uuid4().hex[:8]}")
    result = mlflow.genai.evaluate(data=ROWS, predict_fn=shout, scorers=[exact_match, answer_length])

    assert result.metrics["exact_match/mean"] == pytest.approx(2 / 3)
    assert result.metrics["answer_length/mean"] == pytest.approx(8 / 3)
    run = mlflow.get_run(result.run_id)
    assert run.info.experiment_id == experiment.experiment_id
    assert run.data.metrics["exact_match/mean"] == pytest.approx(2 / 3)

    traces = mlflow.search_traces(run_id=result.run_id, return_type="list")
    by_question = {t.data.spans[0].inputs["question"]: t for t in traces}
    assert sorted(by_question) == ["four", "no", "ok"]
    assert _assessments(by_question["ok"]) == {"exact_match": True, "answer_length": 2, "expected": "OK"}
    assert _assessments(by_question["no"]) == {"exact_match": False, "answer_length": 2, "expected": "yes"}
    assert by_question["four"].data.spans[0].outputs == "FOUR"
    # The feedback is searchable like any other.
    failed = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list",
                                  filter_string="feedback.exact_match = 'false'")
    assert [t.info.trace_id for t in failed] == [by_question["no"].info.trace_id]


def test_a_stored_evaluation_dataset_is_evaluated(tracking_uri):
    from mlflow.genai.datasets import create_dataset

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(f"genai-eval-ds-{uuid.uuid4().hex[:8]}")
    dataset = create_dataset(name=f"questions-{uuid.uuid4().hex[:6]}", experiment_id=[experiment.experiment_id])
    dataset.merge_records(ROWS)
    result = mlflow.genai.evaluate(data=dataset, predict_fn=shout, scorers=[exact_match])
    assert result.metrics["exact_match/mean"] == pytest.approx(2 / 3)
    traces = mlflow.search_traces(run_id=result.run_id, return_type="list")
    assert sorted(_assessments(t)["exact_match"] for t in traces) == [False, True, True]
