import { describe, expect, it } from "vitest";
import { metricColumns, metricsByDataset, registeredVersions, type ModelMetric, type ModelWithRegistrations } from "./ExperimentModels";

const metric = (key: string, value: number, extra: Partial<ModelMetric> = {}): ModelMetric => ({ key, value, timestamp: 1, step: 0, ...extra });

function model(id: string, metrics: ModelMetric[], extra: Partial<ModelWithRegistrations["info"]> = {}): ModelWithRegistrations {
  return { info: { model_id: id, experiment_id: "1", name: id, ...extra }, data: { metrics } };
}

describe("metricsByDataset", () => {
  it("keeps the same metric on two datasets apart and sorts by key, then dataset", () => {
    const rows = metricsByDataset([
      metric("rmse", 0.3),
      metric("accuracy", 0.8, { dataset_name: "train", dataset_digest: "aaa" }),
      metric("accuracy", 0.7, { dataset_name: "eval", dataset_digest: "bbb" }),
    ]);
    expect(rows.map((r) => [r.key, r.datasetName, r.value])).toEqual([
      ["accuracy", "eval", 0.7],
      ["accuracy", "train", 0.8],
      ["rmse", "", 0.3],
    ]);
  });

  it("shows the latest value of a metric's history on a dataset: highest step, then newest", () => {
    const rows = metricsByDataset([
      metric("loss", 3, { step: 2, timestamp: 5 }),
      metric("loss", 1, { step: 10, timestamp: 1 }),
      metric("loss", 2, { step: 1, timestamp: 9 }),
      metric("f1", 0.1, { step: 0, timestamp: 1 }),
      metric("f1", 0.2, { step: 0, timestamp: 2 }),
    ]);
    expect(rows.map((r) => [r.key, r.value, r.step])).toEqual([
      ["f1", 0.2, 0],
      ["loss", 1, 10],
    ]);
  });

  it("tells apart two versions of a dataset by digest", () => {
    const rows = metricsByDataset([metric("acc", 1, { dataset_name: "d", dataset_digest: "v2" }), metric("acc", 2, { dataset_name: "d", dataset_digest: "v1" })]);
    expect(rows.map((r) => r.datasetDigest)).toEqual(["v1", "v2"]);
  });

  it("is empty without metrics", () => {
    expect(metricsByDataset(undefined)).toEqual([]);
  });
});

describe("metricColumns", () => {
  it("makes one column per metric and dataset across models, naming digests only when a name is ambiguous", () => {
    const cols = metricColumns([
      model("m1", [metric("accuracy", 0.9, { dataset_name: "train", dataset_digest: "t1" }), metric("accuracy", 0.8, { dataset_name: "eval", dataset_digest: "e1" })]),
      model("m2", [metric("accuracy", 0.7, { dataset_name: "eval", dataset_digest: "e2" }), metric("rmse", 0.1)]),
    ]);
    expect(cols.map((c) => [c.key, c.datasetName, c.datasetDigest, c.showDigest])).toEqual([
      ["accuracy", "eval", "e1", true],
      ["accuracy", "eval", "e2", true],
      ["accuracy", "train", "t1", false],
      ["rmse", "", "", false],
    ]);
  });
});

describe("registeredVersions", () => {
  it("prefers the server's registrations and falls back to MLflow's tag", () => {
    expect(registeredVersions(model("m", [], { registrations: [{ name: "a", version: "2" }] }))).toEqual([{ name: "a", version: "2" }]);
    const tagged = model("m", [], { tags: [{ key: "mlflow.modelVersions", value: '[{"name": "b", "version": 3}]' }] });
    expect(registeredVersions(tagged)).toEqual([{ name: "b", version: "3" }]);
    expect(registeredVersions(model("m", [], { tags: [{ key: "mlflow.modelVersions", value: "not json" }] }))).toEqual([]);
    expect(registeredVersions(model("m", []))).toEqual([]);
  });
});
