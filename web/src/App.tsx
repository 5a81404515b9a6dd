import { ComparePage } from "./pages/ComparePage";
import { ExperimentsPage } from "./pages/ExperimentsPage";
import { MetricPage } from "./pages/MetricPage";
import { LoggedModelPage, ModelPage, ModelsPage, ModelVersionPage } from "./pages/ModelsPages";
import { RunPage } from "./pages/RunPage";
import { RunsPage } from "./pages/RunsPage";
import { TokensPage } from "./pages/TokensPage";
import { TracesPage } from "./pages/TracesPage";
import { PromptPage, PromptsPage } from "./pages/PromptsPages";
import { EvaluationRunsPage } from "./pages/EvaluationRunsPage";
import { UserPermissionsPage, UsersPage } from "./pages/AdminPages";
import { idList, useLocation, type Location } from "./router";
import { CurrentUser } from "./components/CurrentUser";
import { PlatformLinks } from "./components/PlatformLinks";

function Page({ location }: { location: Location }) {
  const p = location.path;
  if (p.length === 0 || (p[0] === "experiments" && p.length === 1)) return <ExperimentsPage />;
  if (p[0] === "experiments" && p.length === 2) return <RunsPage key={p[1]} experimentIds={[p[1]]} />;
  if (p[0] === "experiments" && p[2] === "runs" && p.length >= 4)
    return <RunPage experimentId={p[1]} runId={p[3]} tab={p[4]} artifactPath={p[4] === "artifacts" && p.length > 5 ? p.slice(5).join("/") : undefined} />;
  if (p[0] === "experiments" && p[2] === "models" && p.length === 3) return <RunsPage key={p[1]} experimentIds={[p[1]]} view="models" />;
  if (p[0] === "experiments" && p[2] === "models" && p.length === 4) return <LoggedModelPage modelId={p[3]} />;
  if (p[0] === "experiments" && p[2] === "traces" && p.length <= 4) {
    const traceId = p[3] ?? location.query.get("selectedTraceId") ?? location.query.get("selectedEvaluationId") ?? undefined;
    return <TracesPage key={p[1]} experimentId={p[1]} traceId={traceId} />;
  }
  if (p[0] === "experiments" && p[2] === "evaluation-runs" && p.length === 3)
    return <EvaluationRunsPage key={p[1]} experimentId={p[1]} selectedRunId={location.query.get("selectedRunUuid") ?? undefined} />;
  if (p[0] === "prompts" && p.length === 1) return <PromptsPage />;
  if (p[0] === "prompts" && p.length === 2) return <PromptPage key={p[1]} name={p[1]} />;
  if (p[0] === "compare-experiments") {
    const ids = idList(location.query.get("experiments"));
    return <RunsPage key={ids.join(",")} experimentIds={ids} />;
  }
  if (p[0] === "compare-runs") return <ComparePage />;
  if (p[0] === "metric" && p.length >= 2) return <MetricPage metricKey={p.slice(1).join("/")} />;
  if (p[0] === "tokens" && p.length === 1) return <TokensPage />;
  if (p[0] === "admin" && p[1] === "users" && p.length === 2) return <UsersPage />;
  if (p[0] === "admin" && p[1] === "users" && p.length === 3) return <UserPermissionsPage key={p[2]} username={p[2]} />;
  if (p[0] === "models" && p.length === 1) return <ModelsPage />;
  if (p[0] === "models" && p.length === 2) return <ModelPage name={p[1]} />;
  if (p[0] === "models" && p[2] === "versions" && p.length === 4) return <ModelVersionPage name={p[1]} version={p[3]} />;
  return (
    <div className="page">
      <h1>Page not found</h1>
      <p>
        Nothing lives at <span className="mono">#/{p.join("/")}</span>. <a href="#/experiments">Go to experiments</a>.
      </p>
    </div>
  );
}

export function App() {
  const location = useLocation();
  const section = location.path[0] === "models" ? "models" : location.path[0] === "prompts" ? "prompts" : "experiments";
  return (
    <>
      <a className="skip-link" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href="#/experiments">
          mlox
        </a>
        <nav aria-label="Main">
          <a href="#/experiments" aria-current={section === "experiments" ? "page" : undefined}>
            Experiments
          </a>
          <a href="#/models" aria-current={section === "models" ? "page" : undefined}>
            Models
          </a>
          <a href="#/prompts" aria-current={section === "prompts" ? "page" : undefined}>
            Prompts
          </a>
          <PlatformLinks />
        </nav>
        <CurrentUser />
      </header>
      <main id="main" tabIndex={-1}>
        <Page location={location} />
      </main>
    </>
  );
}
