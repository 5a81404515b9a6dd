"""OpenTelemetry trace export (OTLP/HTTP, ``POST /v1/traces``): spans sent by the MLflow client
or by any OpenTelemetry exporter are kept by the server and come back with their traces.

The MLflow client sends its spans this way whenever the server supports it; other
instrumentations (OpenInference, the GenAI semantic conventions, Traceloop) send theirs with
their own attribute names, which the server translates to MLflow's.
"""

import gzip
import json
import os
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

import mlflow
from mlflow.entities import SpanType

EXPERIMENT_HEADER = "x-mlflow-experiment-id"


def _flush():
    try:
        mlflow.flush_trace_async_logging(terminate=False)
    except TypeError:
        mlflow.flush_trace_async_logging()


def _value(v) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _span(trace_hex, span_hex, name, parent_hex=None, attributes=None, start_s=1, end_s=2,
          status=None):
    span = ProtoSpan(
        trace_id=bytes.fromhex(trace_hex),
        span_id=bytes.fromhex(span_hex),
        name=name,
        start_time_unix_nano=int(start_s * 1e9),
        end_time_unix_nano=int(end_s * 1e9),
    )
    if parent_hex:
        span.parent_span_id = bytes.fromhex(parent_hex)
    for key, value in (attributes or {}).items():
        span.attributes.append(KeyValue(key=key, value=_value(value)))
    if status:
        span.status.CopyFrom(status)
    return span


def _export(*spans, service_name=None) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    if service_name:
        resource_spans.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value=service_name))
        )
    resource_spans.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def _post(server_url, body, experiment_id, content_type="application/x-protobuf", **headers):
    headers = {"Content-Type": content_type, **headers}
    if experiment_id is not None:
        headers[EXPERIMENT_HEADER] = experiment_id
    return requests.post(f"{server_url}/v1/traces", data=body, headers=headers, timeout=30)


def _trace_hex() -> str:
    return os.urandom(16).hex()


def test_the_mlflow_client_keeps_its_spans_in_the_tracking_store(experiment_id):
    @mlflow.trace(span_type=SpanType.CHAIN)
    def answer(question):
        with mlflow.start_span(name="lookup", span_type=SpanType.RETRIEVER) as span:
            span.set_inputs({"q": question})
            span.set_attribute("hits", 3)
            span.set_outputs(["doc-1", "doc-2"])
        return f"answer to {question}"

    assert answer("why?") == "answer to why?"
    _flush()
    trace_id = mlflow.get_last_active_trace_id()
    trace = mlflow.get_trace(trace_id)
    assert trace.info.tags["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert str(trace.info.state).endswith("OK")
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"answer", "lookup"}
    assert spans["answer"].parent_id is None
    assert spans["lookup"].parent_id == spans["answer"].span_id
    assert spans["lookup"].span_type == SpanType.RETRIEVER
    assert spans["lookup"].inputs == {"q": "why?"}
    assert spans["lookup"].outputs == ["doc-1", "doc-2"]
    assert spans["lookup"].attributes["hits"] == 3
    assert spans["answer"].outputs == "answer to why?"
    # Searches return the same spans.
    [found] = mlflow.search_traces(locations=[experiment_id], return_type="list")
    assert sorted(s.name for s in found.data.spans) == ["answer", "lookup"]


def test_spans_of_other_conventions_are_translated(experiment_id, server_url):
    trace_hex = _trace_hex()
    root = _span(
        trace_hex, "1" * 16, "agent",
        attributes={
            "openinference.span.kind": "AGENT",
            "input.value": "Hello, world!",
            "output.value": "Bye!",
        },
        start_s=10, end_s=13,
        status=Status(code=Status.STATUS_CODE_OK),
    )
    llm = _span(
        trace_hex, "2" * 16, "chat", parent_hex="1" * 16,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-test",
            "gen_ai.usage.input_tokens": 150,
            "gen_ai.usage.output_tokens": 75,
        },
        start_s=11, end_s=12,
    )
    tool = _span(
        trace_hex, "3" * 16, "tool", parent_hex="1" * 16,
        attributes={
            "traceloop.span.kind": "tool",
            "gen_ai.usage.prompt_tokens": 300,
            "gen_ai.usage.completion_tokens": 150,
        },
        start_s=12, end_s=12.5,
    )
    resp = _post(server_url, _export(root, llm, tool, service_name="gemini-cli"), experiment_id)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/x-protobuf")

    trace = mlflow.get_trace(f"tr-{trace_hex}")
    assert trace.info.experiment_id == experiment_id
    assert str(trace.info.state).endswith("OK")
    assert trace.info.request_time == 10_000
    assert trace.info.execution_duration == 3_000
    assert trace.info.request_preview == '"Hello, world!"'
    assert trace.info.response_preview == '"Bye!"'
    assert trace.info.token_usage == {
        "input_tokens": 450, "output_tokens": 225, "total_tokens": 675,
    }
    spans = {s.name: s for s in trace.data.spans}
    assert spans["agent"].span_type == SpanType.AGENT
    assert spans["agent"].inputs == "Hello, world!"
    assert spans["agent"].attributes["service.name"] == "gemini-cli"
    assert spans["chat"].span_type == SpanType.CHAT_MODEL
    assert spans["chat"].attributes["mlflow.llm.model"] == "gpt-test"
    assert "service.name" not in spans["chat"].attributes
    assert spans["tool"].span_type == SpanType.TOOL


def test_json_encoding_and_compression(experiment_id, server_url):
    trace_hex = _trace_hex()
    body = {
        "resourceSpans": [{
            "resource": {"attributes": []},
            "scopeSpans": [{
                "scope": {"name": "manual"},
                "spans": [{
                    "traceId": trace_hex,
                    "spanId": "a" * 16,
                    "name": "json-span",
                    "startTimeUnixNano": "1000000000",
                    "endTimeUnixNano": "1500000000",
                    "attributes": [{"key": "n", "value": {"intValue": "42"}}],
                    "events": [{
                        "name": "checkpoint", "timeUnixNano": "1200000000",
                        "attributes": [{"key": "stage", "value": {"stringValue": "mid"}}],
                    }],
                    "status": {"code": 2, "message": "Something went wrong"},
                }],
            }],
        }],
    }
    resp = _post(server_url, gzip.compress(json.dumps(body).encode()), experiment_id,
                 content_type="application/json", **{"Content-Encoding": "gzip"})
    assert resp.status_code == 200, resp.text
    trace = mlflow.get_trace(f"tr-{trace_hex}")
    assert str(trace.info.state).endswith("ERROR")
    [span] = trace.data.spans
    assert span.attributes["n"] == 42
    assert span.status.status_code == "ERROR"
    assert "Something went wrong" in span.status.description
    assert [(e.name, e.attributes) for e in span.events] == [("checkpoint", {"stage": "mid"})]


def test_a_trace_assembles_from_several_exports(experiment_id, server_url, client):
    trace_hex = _trace_hex()
    child = _span(trace_hex, "b" * 16, "child", parent_hex="c" * 16, start_s=5, end_s=6)
    assert _post(server_url, _export(child), experiment_id).status_code == 200
    trace_id = f"tr-{trace_hex}"
    partial = client.get_trace(trace_id)
    assert str(partial.info.state).endswith("IN_PROGRESS")
    assert [s.name for s in partial.data.spans] == ["child"]

    root = _span(trace_hex, "c" * 16, "root", start_s=4, end_s=7,
                 status=Status(code=Status.STATUS_CODE_OK))
    assert _post(server_url, _export(root), experiment_id).status_code == 200
    trace = client.get_trace(trace_id)
    assert str(trace.info.state).endswith("OK")
    assert [s.name for s in trace.data.spans] == ["root", "child"]
    assert trace.info.request_time == 4_000
    assert trace.info.execution_duration == 3_000
    found = client.search_traces(locations=[experiment_id], filter_string="trace.status = 'OK'")
    assert [t.info.trace_id for t in found] == [trace_id]

    client.delete_traces(experiment_id=experiment_id, trace_ids=[trace_id])
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_trace(trace_id)


def test_a_root_spans_trace_tag_attributes_become_the_traces_tags(experiment_id, server_url, client):
    """How MLflow's client carries a trace's tags over OTLP: `mlflow.traceTag.<key>` attributes
    on the root span, which the server writes as the trace's tags (a child's are not)."""
    trace_hex = _trace_hex()
    root = _span(trace_hex, "d" * 16, "root", attributes={"mlflow.traceTag.team": "search"},
                 status=Status(code=Status.STATUS_CODE_OK))
    child = _span(trace_hex, "e" * 16, "child", parent_hex="d" * 16,
                  attributes={"mlflow.traceTag.child": "no"})
    assert _post(server_url, _export(root, child), experiment_id).status_code == 200
    trace = client.get_trace(f"tr-{trace_hex}")
    assert trace.info.tags["team"] == "search"
    assert "child" not in trace.info.tags
    found = client.search_traces(locations=[experiment_id], filter_string="tags.team = 'search'")
    assert [t.info.trace_id for t in found] == [f"tr-{trace_hex}"]


def test_exports_that_cannot_be_read_are_refused(experiment_id, server_url):
    good = _export(_span(_trace_hex(), "d" * 16, "s"))
    resp = _post(server_url, good, experiment_id, content_type="text/plain")
    assert resp.status_code == 400 and "Invalid Content-Type" in resp.text
    resp = _post(server_url, ExportTraceServiceRequest().SerializeToString(), experiment_id)
    assert resp.status_code == 400 and "no spans found" in resp.text
    resp = _post(server_url, b"this is not valid protobuf data at all", experiment_id)
    assert resp.status_code == 400
    resp = _post(server_url, b"not gzip", experiment_id, **{"Content-Encoding": "gzip"})
    assert resp.status_code == 400
    no_span_id = ProtoSpan(trace_id=bytes.fromhex(_trace_hex()), name="incomplete")
    assert _post(server_url, _export(no_span_id), experiment_id).status_code == 422
    assert _post(server_url, good, None).status_code == 422


def test_spans_for_a_missing_experiment_are_refused(server_url, check):
    resp = _post(server_url, _export(_span(_trace_hex(), "e" * 16, "s")), "987654321")
    check.assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")


def test_get_trace_waits_for_spans_the_client_counted(experiment_id, server_url, client, api):
    """A trace whose info says it has more spans than have arrived is partial: MLflow's
    GetTrace waits a few seconds for the rest, and answers with what it has when asked to."""
    trace_hex = _trace_hex()
    trace_id = f"tr-{trace_hex}"
    root = _span(trace_hex, "f" * 16, "root", start_s=1, end_s=2)
    assert _post(server_url, _export(root), experiment_id).status_code == 200
    payload = api.get(f"/api/3.0/mlflow/traces/{trace_id}").json()["trace"]["trace_info"]
    payload.setdefault("trace_metadata", {})["mlflow.trace.sizeStats"] = json.dumps(
        {"num_spans": 2}
    )
    resp = api.post("/api/3.0/mlflow/traces", json={"trace": {"trace_info": payload}})
    assert resp.status_code == 200, resp.text

    partial = api.get("/api/3.0/mlflow/traces/get",
                      params={"trace_id": trace_id, "allow_partial": "true"})
    assert partial.status_code == 200
    assert len(partial.json()["trace"]["spans"]) == 1
    started = time.monotonic()
    waited = api.get("/api/3.0/mlflow/traces/get", params={"trace_id": trace_id})
    assert waited.status_code == 404
    assert "not fully exported" in waited.json()["message"]
    assert time.monotonic() - started >= 2
    batch = api.get("/api/3.0/mlflow/traces/batchGet", params={"trace_ids": [trace_id]})
    assert batch.json().get("traces", []) == []


def _client_trace(client, experiment_id, name, attributes):
    span = client.start_trace(name=name, experiment_id=experiment_id)
    span.set_attributes(attributes)
    client.end_trace(request_id=span.trace_id, status="OK")
    return span.trace_id


def test_searches_look_into_spans(experiment_id, client):
    first = _client_trace(client, experiment_id, "first", {"test": "value1"})
    second = _client_trace(client, experiment_id, "second", {"test": "value2"})
    third = _client_trace(client, experiment_id, "third", {"other": "I like it"})
    _flush()

    def found(filter_string):
        return {t.info.trace_id for t in client.search_traces(
            locations=[experiment_id], filter_string=filter_string)}

    assert found("trace.text LIKE '%value%'") == {first, second}
    assert found("trace.text LIKE '%I like it%'") == {third}
    assert found("span.name = 'second'") == {second}
    assert found("span.attributes.test LIKE '%value1%'") == {first}


def test_the_v2_trace_api_starts_and_ends_traces(experiment_id, api):
    started = api.post("/api/2.0/mlflow/traces", json={
        "experiment_id": experiment_id,
        "timestamp_ms": 1000,
        "request_metadata": [{"key": "meta1", "value": "apple"}],
        "tags": [{"key": "tag1", "value": "football"}],
    })
    assert started.status_code == 200, started.text
    info = started.json()["trace_info"]
    assert info["experiment_id"] == experiment_id
    assert info["status"] == "IN_PROGRESS"
    assert int(info["timestamp_ms"]) == 1000
    request_id = info["request_id"]

    ended = api.patch(f"/api/2.0/mlflow/traces/{request_id}", json={
        "request_id": request_id,
        "timestamp_ms": 3000,
        "status": "OK",
        "request_metadata": [{"key": "meta2", "value": "grape"}],
        "tags": [{"key": "tag1", "value": "soccer"}],
    })
    assert ended.status_code == 200, ended.text
    info = ended.json()["trace_info"]
    assert info["status"] == "OK"
    assert int(info["execution_time_ms"]) == 2000
    assert {m["key"]: m["value"] for m in info["request_metadata"]} == {
        "meta1": "apple", "meta2": "grape",
    }
    tags = {t["key"]: t["value"] for t in info["tags"]}
    assert tags["tag1"] == "soccer"
    fetched = api.get(f"/api/2.0/mlflow/traces/{request_id}/info")
    assert fetched.json()["trace_info"]["status"] == "OK"


def test_traces_are_deleted_by_age_oldest_first(experiment_id, client, check, api):
    ids = []
    for name in ("old", "new"):
        ids.append(_client_trace(client, experiment_id, name, {}))
        _flush()
        time.sleep(0.05)
    assert client.delete_traces(experiment_id, max_timestamp_millis=int(1e15), max_traces=1) == 1
    remaining = [t.info.trace_id for t in client.search_traces(locations=[experiment_id])]
    assert remaining == [ids[1]]
    resp = api.post("/api/2.0/mlflow/traces/delete-traces", json={
        "experiment_id": experiment_id, "max_timestamp_millis": 1, "request_ids": [ids[1]],
    })
    check.assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert client.delete_traces(experiment_id, max_timestamp_millis=int(1e15)) == 1


def test_structured_expectations_travel_serialized(experiment_id, client, api):
    trace_id = _client_trace(client, experiment_id, "graded", {})
    _flush()
    created = api.post(f"/api/3.0/mlflow/traces/{trace_id}/assessments", json={"assessment": {
        "assessment_name": "response_time_check",
        "expectation": {"value": {"threshold_ms": 1000, "passed": True}},
        "source": {"source_type": "CODE", "source_id": "test"},
    }})
    assert created.status_code == 200, created.text
    expectation = created.json()["assessment"]["expectation"]
    assert expectation["serialized_value"]["serialization_format"] == "JSON_FORMAT"
    assert json.loads(expectation["serialized_value"]["value"]) == {
        "threshold_ms": 1000, "passed": True,
    }
    [read] = mlflow.get_trace(trace_id).info.assessments
    assert read.value == {"threshold_ms": 1000, "passed": True}


def test_the_trace_artifact_is_assembled_from_stored_spans(experiment_id, server_url):
    with mlflow.start_span(name="downloaded") as span:
        span.set_attributes({"fruit": "apple"})
    _flush()
    resp = requests.get(f"{server_url}/ajax-api/2.0/mlflow/get-trace-artifact",
                        params={"request_id": span.trace_id}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert "traces.json" in resp.headers["Content-Disposition"]
    [stored] = json.loads(resp.text)["spans"]
    assert stored["name"] == "downloaded"
    assert json.loads(stored["attributes"]["fruit"]) == "apple"


def test_traces_link_to_a_run_before_their_export_arrives(experiment_id, client, server_url):
    run = client.create_run(experiment_id)
    trace_hex = _trace_hex()
    trace_id = f"tr-{trace_hex}"
    client.link_traces_to_run([trace_id], run.info.run_id)
    root = _span(trace_hex, "9" * 16, "late", status=Status(code=Status.STATUS_CODE_OK))
    assert _post(server_url, _export(root), experiment_id).status_code == 200
    found = client.search_traces(locations=[experiment_id],
                                 filter_string=f"attribute.run_id = '{run.info.run_id}'")
    assert [t.info.trace_id for t in found] == [trace_id]


def test_an_opentelemetry_sdk_exports_to_the_server(experiment_id, server_url, client):
    """OpenTelemetry's own SDK and OTLP/HTTP exporter, configured as users configure them,
    with gzip compression: the spans arrive and read back as one MLflow trace."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{server_url}/v1/traces",
        headers={EXPERIMENT_HEADER: experiment_id},
        compression=Compression.Gzip,
    )))
    tracer = provider.get_tracer("shop")
    with tracer.start_as_current_span("checkout") as root:
        root.set_attribute("openinference.span.kind", "CHAIN")
        root.set_attribute("input.value", "cart-42")
        with tracer.start_as_current_span("charge") as child:
            child.set_attribute("amount", 12.5)
    provider.shutdown()

    trace_id = "tr-" + format(root.get_span_context().trace_id, "032x")
    trace = client.get_trace(trace_id)
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"checkout", "charge"}
    assert spans["charge"].parent_id == spans["checkout"].span_id
    assert spans["charge"].attributes["amount"] == 12.5
    assert spans["checkout"].span_type == "CHAIN"
    assert spans["checkout"].inputs == "cart-42"
    # Only known coding agents' service names are kept, as in MLflow.
    assert "service.name" not in spans["checkout"].attributes
