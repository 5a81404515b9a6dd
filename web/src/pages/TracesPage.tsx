// An experiment's traces: the list (MLflow's `#/experiments/{id}/traces`) and one trace, opened
// from the list or by deep link (`?selectedEvaluationId=` / `?selectedTraceId=`, as MLflow's UI
// writes them).
import { ExperimentHeader } from "../components/ExperimentHeader";

export function TracesPage({ experimentId, traceId }: { experimentId: string; traceId?: string }) {
  return (
    <div className="page">
      <ExperimentHeader experimentId={experimentId} active="traces" />
      <p className="muted">{traceId ? `Trace ${traceId}` : "Traces"}</p>
    </div>
  );
}
