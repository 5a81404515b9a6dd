// An experiment's logged models (MLflow 3's "Models" tab, `#/experiments/{id}/models`).
import { post, type LoggedModel } from "../api";
import { ErrorBanner, Spinner, StatusBadge, useAsync } from "../components/common";
import { formatTime } from "../format";
import { href } from "../router";

export function ExperimentModels({ experimentIds }: { experimentIds: string[] }) {
  const { data, error, loading } = useAsync(async () => {
    const models: LoggedModel[] = [];
    let pageToken: string | undefined;
    do {
      // The server allows at most 50 logged models a page, as MLflow does.
      const r = await post<{ models?: LoggedModel[]; next_page_token?: string }>("logged-models/search", {
        experiment_ids: experimentIds,
        max_results: 50,
        page_token: pageToken,
      });
      models.push(...(r.models ?? []));
      pageToken = r.next_page_token || undefined;
    } while (pageToken && models.length < 1000);
    return models;
  }, [experimentIds.join(",")]);
  if (loading) return <Spinner />;
  return (
    <>
      <ErrorBanner error={error} />
      <table className="grid" aria-label="Logged models">
        <thead>
          <tr>
            <th>Model</th>
            <th>Status</th>
            <th>Created</th>
            <th>Source run</th>
            <th>Type</th>
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((m) => (
            <tr key={m.info.model_id}>
              <td>
                <a href={href(["experiments", m.info.experiment_id, "models", m.info.model_id])}>{m.info.name}</a>
              </td>
              <td>
                <StatusBadge status={m.info.status?.replace("LOGGED_MODEL_", "")} />
              </td>
              <td>{formatTime(m.info.creation_timestamp_ms)}</td>
              <td>{m.info.source_run_id ? <a href={href(["experiments", m.info.experiment_id, "runs", m.info.source_run_id])}>{m.info.source_run_id.slice(0, 8)}</a> : "—"}</td>
              <td>{m.info.model_type ?? ""}</td>
            </tr>
          ))}
          {data && data.length === 0 && (
            <tr>
              <td colSpan={5} className="muted">
                No logged models.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}
