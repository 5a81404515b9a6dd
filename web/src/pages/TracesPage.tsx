// An experiment's traces: the list (MLflow's `#/experiments/{id}/traces`) and one trace, opened
// from the list or by deep link (`/traces/{trace_id}`, or `?selectedEvaluationId=` /
// `?selectedTraceId=` as MLflow's UI writes them).
import { ExperimentHeader } from "../components/ExperimentHeader";
import { href, useLocation } from "../router";
import { TraceDetail } from "./traceDetail";
import { TraceList } from "./traceList";
import "../traces.css";

export function TracesPage({ experimentId, traceId }: { experimentId: string; traceId?: string }) {
  const { query } = useLocation();
  const listQuery = { filter: query.get("filter") ?? undefined, sort: query.get("sort") ?? undefined };
  return (
    <div className="page traces-page">
      <ExperimentHeader
        experimentId={experimentId}
        active="traces"
        trail={traceId ? [{ label: "Traces", to: href(["experiments", experimentId, "traces"], listQuery) }, { label: traceId }] : undefined}
      />
      {traceId ? <TraceDetail key={traceId} experimentId={experimentId} traceId={traceId} /> : <TraceList experimentId={experimentId} />}
    </div>
  );
}
