// The top of every page that belongs to one experiment: breadcrumbs and title with the
// experiment's name (never "Experiment 4"), and the experiment's tabs as links in MLflow's URL
// shapes, so each tab is a deep link a user can keep.
import { getExperiment, tagValue } from "../api";
import { href } from "../router";
import { ErrorBanner, useAsync } from "./common";
import { Markdown } from "./Markdown";

export type ExperimentTab = "runs" | "chart" | "models" | "traces" | "evaluation-runs";

const TABS: { id: ExperimentTab; label: string; to: (id: string) => string }[] = [
  { id: "runs", label: "Runs", to: (id) => href(["experiments", id]) },
  { id: "chart", label: "Charts", to: (id) => href(["experiments", id], { view: "chart" }) },
  { id: "models", label: "Models", to: (id) => href(["experiments", id, "models"]) },
  { id: "traces", label: "Traces", to: (id) => href(["experiments", id, "traces"]) },
  { id: "evaluation-runs", label: "Evaluations", to: (id) => href(["experiments", id, "evaluation-runs"]) },
];

/** The experiment's name once loaded, its id until then. */
export function useExperimentName(experimentId: string) {
  const experiment = useAsync(() => getExperiment(experimentId), [experimentId]);
  return { name: experiment.data?.name, description: tagValue(experiment.data?.tags, "mlflow.note.content"), error: experiment.error };
}

export function ExperimentHeader({
  experimentId,
  active,
  trail,
}: {
  experimentId: string;
  active: ExperimentTab;
  /** Further breadcrumbs after the experiment's name (a trace, a run). */
  trail?: { label: string; to?: string }[];
}) {
  const { name, description, error } = useExperimentName(experimentId);
  const title = name ?? `Experiment ${experimentId}`;
  return (
    <>
      <nav className="breadcrumbs" aria-label="Breadcrumbs">
        <a href="#/experiments">Experiments</a> / {trail?.length ? <a href={href(["experiments", experimentId])}>{title}</a> : <span>{title}</span>}
        {trail?.map((t, i) => (
          <span key={i}>
            {" / "}
            {t.to ? <a href={t.to}>{t.label}</a> : <span>{t.label}</span>}
          </span>
        ))}
      </nav>
      <header className="page-header">
        <h1>{title}</h1>
        <span className="muted mono">ID {experimentId}</span>
      </header>
      {description && <Markdown className="experiment-description" source={description} />}
      <ErrorBanner error={error} />
      <nav className="tabs" aria-label="Experiment">
        {TABS.map((t) => (
          <a key={t.id} className={t.id === active ? "tab active" : "tab"} href={t.to(experimentId)} aria-current={t.id === active ? "page" : undefined}>
            {t.label}
          </a>
        ))}
      </nav>
    </>
  );
}
