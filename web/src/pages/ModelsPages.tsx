import { useState } from "react";
import { get, getExperiment, searchRegisteredModels, getRun, patch, post, del, loggedModelArtifactUrl, modelVersionArtifactUrl, type LoggedModel, type ModelVersion, type RegisteredModel } from "../api";
import { ArtifactBrowser } from "../components/artifacts";
import { SignatureSection } from "../components/signature";
import { EditableText, ErrorBanner, KeyValueTable, Section, Spinner, StatusBadge, TagEditor, useAsync } from "../components/common";
import { AliasChips, latestVersion, RegisteredModelList } from "../components/registeredModelList";
import { formatNumber, formatTime } from "../format";
import { href } from "../router";
import { DatasetLabel, metricsByDataset, registeredVersions, type ModelMetric, type ModelWithRegistrations } from "./ExperimentModels";

export function ModelsPage() {
  return (
    <RegisteredModelList
      title="Registered models"
      searchLabel="Search models"
      searchPlaceholder="Search models by name"
      fetchPage={({ filter }, pageToken) => searchRegisteredModels({ filter, pageToken })}
      headers={["Name", "Latest version", "Aliases", "Last modified", "Tags"]}
      row={(m) => {
        const latest = latestVersion(m);
        return (
          <tr key={m.name} data-model={m.name}>
            <td>
              <a href={href(["models", m.name])}>{m.name}</a>
            </td>
            <td>{latest ? <a href={href(["models", m.name, "versions", latest.version])}>Version {latest.version}</a> : "—"}</td>
            <td>
              <AliasChips model={m} />
            </td>
            <td>{formatTime(m.last_updated_timestamp)}</td>
            <td className="muted">{(m.tags ?? []).map((t) => `${t.key}=${t.value}`).join(", ")}</td>
          </tr>
        );
      }}
      empty={() => "No registered models."}
    />
  );
}

async function loadModel(name: string) {
  const [model, versions] = await Promise.all([
    get<{ registered_model: RegisteredModel }>("registered-models/get", { name }).then((r) => r.registered_model),
    get<{ model_versions?: ModelVersion[] }>("model-versions/search", {
      filter: `name='${name.replace(/'/g, "\\'")}'`,
      max_results: 1000,
      order_by: ["version_number DESC"],
    }).then((r) => r.model_versions ?? []),
  ]);
  return { model, versions };
}

export function ModelPage({ name }: { name: string }) {
  const { data, error, loading, reload } = useAsync(() => loadModel(name), [name]);
  const [alias, setAlias] = useState("");
  const [aliasVersion, setAliasVersion] = useState("");
  const [aliasError, setAliasError] = useState<Error | null>(null);
  if (loading && !data) return <Spinner />;
  if (!data) return <ErrorBanner error={error} />;
  const { model, versions } = data;
  return (
    <div className="page">
      <nav className="breadcrumbs" aria-label="Breadcrumbs">
        <a href="#/models">Registered models</a> / <span>{name}</span>
      </nav>
      <header className="page-header">
        <h1>{name}</h1>
      </header>
      <ErrorBanner error={error} />
      <Section title="Details">
        <KeyValueTable
          label="Model details"
          rows={[
            ["Created", formatTime(model.creation_timestamp)],
            ["Last modified", formatTime(model.last_updated_timestamp)],
          ]}
        />
      </Section>
      <Section title="Description">
        <EditableText label="Description" value={model.description ?? ""} onSave={(description) => patch("registered-models/update", { name, description }).then(reload)} placeholder="No description" />
      </Section>
      <Section title="Aliases">
        <div className="chips" aria-label="Aliases">
          {(model.aliases ?? []).length === 0 && <span className="muted">No aliases</span>}
          {(model.aliases ?? []).map((a) => (
            <span key={a.alias} className="chip" data-alias={a.alias}>
              @{a.alias} → <a href={href(["models", name, "versions", a.version])}>v{a.version}</a>{" "}
              <button
                type="button"
                className="link-button danger"
                aria-label={`Remove alias ${a.alias}`}
                onClick={() => del("registered-models/alias", { name, alias: a.alias }).then(reload, setAliasError)}
              >
                ×
              </button>
            </span>
          ))}
        </div>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            post("registered-models/alias", { name, alias, version: aliasVersion }).then(() => {
              setAlias("");
              setAliasError(null);
              reload();
            }, setAliasError);
          }}
        >
          <input aria-label="Alias" placeholder="Alias" value={alias} onChange={(e) => setAlias(e.target.value)} />
          <select aria-label="Alias version" value={aliasVersion} onChange={(e) => setAliasVersion(e.target.value)}>
            <option value="">Version…</option>
            {versions.map((v) => (
              <option key={v.version} value={v.version}>
                {v.version}
              </option>
            ))}
          </select>
          <button type="submit" disabled={!alias || !aliasVersion}>
            Set alias
          </button>
        </form>
        <ErrorBanner error={aliasError} />
      </Section>
      <Section title={`Versions (${versions.length})`}>
        <table className="grid" aria-label="Versions">
          <thead>
            <tr>
              <th>Version</th>
              <th>Registered</th>
              <th>Stage</th>
              <th>Aliases</th>
              <th>Status</th>
              <th>Source run</th>
              <th>Description</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr key={v.version} data-version={v.version}>
                <td>
                  <a href={href(["models", name, "versions", v.version])}>Version {v.version}</a>
                </td>
                <td>{formatTime(v.creation_timestamp)}</td>
                <td>{v.current_stage ?? "None"}</td>
                <td>
                  {(v.aliases ?? []).map((a) => (
                    <span key={a} className="chip">
                      @{a}
                    </span>
                  ))}
                </td>
                <td>
                  <StatusBadge status={v.status} />
                </td>
                <td className="mono">{v.run_id ? <RunLink runId={v.run_id} /> : "—"}</td>
                <td className="muted ellipsis">{v.description ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      <Section title="Tags">
        <TagEditor
          tags={model.tags ?? []}
          onSet={(key, value) => post("registered-models/set-tag", { name, key, value }).then(reload)}
          onDelete={(key) => del("registered-models/delete-tag", { name, key }).then(reload)}
        />
      </Section>
    </div>
  );
}

/** A link to a run; the experiment id it needs comes from the run itself. */
function RunLink({ runId }: { runId: string }) {
  const { data } = useAsync(() => getRun(runId).catch(() => null), [runId]);
  if (!data) return <span>{runId.slice(0, 8)}</span>;
  return <a href={href(["experiments", data.info.experiment_id, "runs", runId])}>{data.info.run_name || runId.slice(0, 8)}</a>;
}

const STAGES = ["None", "Staging", "Production", "Archived"];

export function ModelVersionPage({ name, version }: { name: string; version: string }) {
  const { data, error, loading, reload } = useAsync(
    () => get<{ model_version: ModelVersion }>("model-versions/get", { name, version }).then((r) => r.model_version),
    [name, version],
  );
  const [actionError, setActionError] = useState<Error | null>(null);
  if (loading && !data) return <Spinner />;
  if (!data) return <ErrorBanner error={error} />;
  const v = data;
  const modelId = v.model_id ?? (v.source?.startsWith("models:/m-") ? v.source.slice("models:/".length).split("/")[0] : undefined);
  return (
    <div className="page">
      <nav className="breadcrumbs" aria-label="Breadcrumbs">
        <a href="#/models">Registered models</a> / <a href={href(["models", name])}>{name}</a> / <span>Version {version}</span>
      </nav>
      <header className="page-header">
        <h1>
          {name} <span className="muted">version {version}</span>
        </h1>
        <StatusBadge status={v.status} />
      </header>
      <ErrorBanner error={error ?? actionError} />
      <Section title="Details">
        <KeyValueTable
          label="Version details"
          rows={[
            ["Registered", formatTime(v.creation_timestamp)],
            ["Last modified", formatTime(v.last_updated_timestamp)],
            ["Creator", v.user_id || "—"],
            [
              "Stage",
              <select
                aria-label="Stage"
                value={v.current_stage ?? "None"}
                onChange={(e) =>
                  post("model-versions/transition-stage", { name, version, stage: e.target.value, archive_existing_versions: false }).then(reload, setActionError)
                }
              >
                {STAGES.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>,
            ],
            ["Aliases", (v.aliases ?? []).map((a) => `@${a}`).join(", ") || "—"],
            ["Source run", v.run_id ? <RunLink runId={v.run_id} /> : "—"],
            ["Logged model", modelId ? <LoggedModelLink modelId={modelId} /> : "—"],
            ["Source", <span className="mono">{v.source}</span>],
          ]}
        />
      </Section>
      <Section title="Description">
        <EditableText label="Description" value={v.description ?? ""} onSave={(description) => patch("model-versions/update", { name, version, description }).then(reload)} placeholder="No description" />
      </Section>
      <SignatureSection url={modelVersionArtifactUrl(name, version, "MLmodel")} />
      <Section title="Tags">
        <TagEditor
          tags={v.tags ?? []}
          onSet={(key, value) => post("model-versions/set-tag", { name, version, key, value }).then(reload)}
          onDelete={(key) => del("model-versions/delete-tag", { name, version, key }).then(reload)}
        />
      </Section>
    </div>
  );
}

function LoggedModelLink({ modelId }: { modelId: string }) {
  const { data } = useAsync(() => get<{ model: LoggedModel }>(`logged-models/${encodeURIComponent(modelId)}`).then((r) => r.model).catch(() => null), [modelId]);
  if (!data) return <span className="mono">{modelId}</span>;
  return <a href={href(["experiments", data.info.experiment_id, "models", modelId])}>{data.info.name} ({modelId})</a>;
}

export function LoggedModelPage({ modelId }: { modelId: string }) {
  const { data, error, loading, reload } = useAsync(
    () => get<{ model: ModelWithRegistrations }>(`logged-models/${encodeURIComponent(modelId)}`).then((r) => r.model),
    [modelId],
  );
  const experimentId = data?.info.experiment_id;
  const experiment = useAsync(() => (experimentId ? getExperiment(experimentId).catch(() => null) : Promise.resolve(null)), [experimentId]);
  if (loading && !data) return <Spinner />;
  if (!data) return <ErrorBanner error={error} />;
  const { info } = data;
  const versions = registeredVersions(data);
  return (
    <div className="page">
      <nav className="breadcrumbs" aria-label="Breadcrumbs">
        <a href="#/experiments">Experiments</a> /{" "}
        <a href={href(["experiments", info.experiment_id, "models"])}>{experiment.data?.name ?? `Experiment ${info.experiment_id}`}</a> / <span>{info.name}</span>
      </nav>
      <header className="page-header">
        <h1>{info.name}</h1>
        <StatusBadge status={info.status?.replace("LOGGED_MODEL_", "")} />
      </header>
      <ErrorBanner error={error} />
      <Section title="Details">
        <KeyValueTable
          label="Logged model details"
          rows={[
            ["Model ID", <span className="mono">{info.model_id}</span>],
            ["Created", formatTime(info.creation_timestamp_ms)],
            ["Source run", info.source_run_id ? <RunLink runId={info.source_run_id} /> : "—"],
            ["Type", info.model_type || "—"],
            [
              "Registered versions",
              versions.length === 0
                ? "—"
                : versions.map((v) => (
                    <a key={`${v.name}/${v.version}`} className="chip" href={href(["models", v.name, "versions", v.version])}>
                      {v.name} v{v.version}
                    </a>
                  )),
            ],
            ["Artifact URI", <span className="mono">{info.artifact_uri}</span>],
          ]}
        />
      </Section>
      <Section title="Metrics">
        <ModelMetricsTable metrics={data.data?.metrics} />
      </Section>
      <Section title="Parameters">
        <KeyValueTable label="Parameters" rows={(data.data?.params ?? []).map((p) => [p.key, p.value])} />
      </Section>
      <SignatureSection url={loggedModelArtifactUrl(modelId, "MLmodel")} />
      <Section title="Tags">
        <TagEditor
          tags={info.tags ?? []}
          onSet={(key, value) => patch(`logged-models/${encodeURIComponent(modelId)}/tags`, { tags: [{ key, value }] }).then(reload)}
          onDelete={(key) => del(`logged-models/${encodeURIComponent(modelId)}/tags/${encodeURIComponent(key)}`, undefined).then(reload)}
        />
      </Section>
      <Section title="Artifacts">
        <ArtifactBrowser source={{ kind: "logged-model", id: modelId }} />
      </Section>
    </div>
  );
}

/** A logged model's metrics, one row per metric and dataset, so that the same metric computed
 * on a training and an evaluation set reads as two different numbers. */
function ModelMetricsTable({ metrics }: { metrics?: ModelMetric[] }) {
  const rows = metricsByDataset(metrics);
  if (rows.length === 0) return <p className="muted">No metrics.</p>;
  return (
    <table className="grid" aria-label="Metrics">
      <thead>
        <tr>
          <th>Metric</th>
          <th>Dataset</th>
          <th>Value</th>
          <th>Step</th>
          <th>Run</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((m) => (
          <tr key={JSON.stringify([m.key, m.datasetName, m.datasetDigest])} data-metric={m.key} data-dataset={m.datasetName}>
            <td>{m.key}</td>
            <td>
              <DatasetLabel name={m.datasetName} digest={m.datasetDigest} />
            </td>
            <td className="mono">{formatNumber(m.value)}</td>
            <td>{m.step}</td>
            <td>{m.runId ? <RunLink runId={m.runId} /> : "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
