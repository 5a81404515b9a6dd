// MLflow's evaluation-runs page (`#/experiments/{id}/evaluation-runs?selectedRunUuid=…`, the link
// the client prints after `mlflow.genai.evaluate`).
import { ExperimentHeader } from "../components/ExperimentHeader";

export function EvaluationRunsPage({ experimentId, selectedRunId }: { experimentId: string; selectedRunId?: string }) {
  return (
    <div className="page">
      <ExperimentHeader experimentId={experimentId} active="evaluation-runs" />
      <p className="muted">{selectedRunId ?? "Evaluation runs"}</p>
    </div>
  );
}
