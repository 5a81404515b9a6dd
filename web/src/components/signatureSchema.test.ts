import { describe, expect, it } from "vitest";
import { readScalar, readSignature, readTopLevelMapping, shapeLabel, typeLabel } from "./signatureSchema";

// As MLflow 3 writes it for a scikit-learn model logged with a DataFrame input example:
// PyYAML folds the long JSON string over several more deeply indented lines.
const SKLEARN_MLMODEL = `artifact_path: mlflow-artifacts:/1/models/m-abc/artifacts
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.12.3
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.7.2
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_id: m-abc
model_size_bytes: 1103
model_uuid: m-abc
signature:
  inputs: '[{"type": "double", "name": "fixed_acidity", "required": true}, {"type":
    "double", "name": "density", "required": true}, {"type": "double", "name": "ph",
    "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
  params: null
type_hint_from_example: false
utc_time_created: '2025-01-01 10:00:00.000000'
`;

describe("readSignature", () => {
  it("reads folded single-quoted JSON columns and tensor outputs", () => {
    const sig = readSignature(SKLEARN_MLMODEL);
    expect(sig).not.toBeNull();
    expect(sig!.inputs).toEqual([
      { name: "fixed_acidity", type: "double", required: true },
      { name: "density", type: "double", required: true },
      { name: "ph", type: "double", required: true },
    ]);
    expect(sig!.outputs).toEqual([{ name: undefined, type: "tensor", required: true, tensor: { dtype: "float64", shape: [-1] } }]);
    expect(sig!.params).toBeNull();
  });

  it("says null for a model without signature", () => {
    expect(readSignature(SKLEARN_MLMODEL.replace(/signature:[\s\S]*?type_hint/, "type_hint"))).toBeNull();
    expect(readSignature("flavors:\n  python_function: {}\nsignature: null\n")).toBeNull();
    expect(readSignature("")).toBeNull();
  });

  it("reads optional columns, nested types, params and quotes inside names", () => {
    const inputs = JSON.stringify([
      { type: "string", name: "it's", required: false },
      { type: "array", items: { type: "string" }, name: "tags", required: true },
      { type: "object", properties: { a: { type: "long", required: true }, b: { type: "string", required: false } }, name: "obj", required: true },
      { type: "map", values: { type: "double" }, name: "scores", required: true },
    ]);
    const params = JSON.stringify([{ name: "temperature", type: "double", default: 0.5, shape: null }, { name: "stop", type: "string", default: ["a"], shape: [-1] }]);
    const yaml = `signature:\n  inputs: '${inputs.replace(/'/g, "''")}'\n  outputs: null\n  params: '${params}'\n`;
    const sig = readSignature(yaml)!;
    expect(sig.inputs!.map((c) => [c.name, c.type, c.required])).toEqual([
      ["it's", "string", false],
      ["tags", "array<string>", true],
      ["obj", "{a: long, b?: string}", true],
      ["scores", "map<string, double>", true],
    ]);
    expect(sig.outputs).toBeNull();
    expect(sig.params).toEqual([
      { name: "temperature", type: "double", default: 0.5, shape: null },
      { name: "stop", type: "string", default: ["a"], shape: [-1] },
    ]);
  });

  it("reads MLflow 2's `optional` flag and named tensors", () => {
    const yaml = `signature:
  inputs: '[{"name": "x", "type": "long", "optional": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28]}, "name": "probs"}]'
`;
    const sig = readSignature(yaml)!;
    expect(sig.inputs).toEqual([{ name: "x", type: "long", required: false }]);
    expect(sig.outputs![0]).toMatchObject({ name: "probs", tensor: { dtype: "float32", shape: [-1, 28, 28] } });
  });

  it("reads double-quoted strings with escapes and escaped line breaks", () => {
    const yaml = 'signature:\n  inputs: "[{\\"type\\": \\"string\\", \\"name\\": \\"caf\\xE9\\",\\\n    \\ \\"required\\": true}]"\n';
    expect(readSignature(yaml)!.inputs).toEqual([{ name: "café", type: "string", required: true }]);
  });

  it("ignores comments and blank lines, and stops at the next top-level key", () => {
    const yaml = "# written by hand\nsignature:  # the schema\n\n  # inputs first\n  inputs: '[{\"type\": \"long\", \"name\": \"n\"}]'\nparams: '[1]'\n";
    const sig = readSignature(yaml)!;
    expect(sig.inputs).toEqual([{ name: "n", type: "long", required: true }]);
    expect(sig.params).toBeNull();
  });

  it("tolerates Windows line endings and broken JSON", () => {
    expect(readSignature("signature:\r\n  inputs: '[{\"type\": \"long\", \"name\": \"n\"}]'\r\n")!.inputs).toHaveLength(1);
    expect(readSignature("signature:\n  inputs: '[{\"type\": '\n  outputs: '[]'\n")).toEqual({ inputs: null, outputs: [], params: null });
  });
});

describe("readScalar", () => {
  it("folds quoted lines into spaces and empty lines into newlines", () => {
    expect(readScalar("'a b\n    c\n\n    d'")).toBe("a b c\nd");
    expect(readScalar("'it''s'")).toBe("it's");
    expect(readScalar('"tab\\there \\\n   joined"')).toBe("tab\there joined");
  });
  it("keeps escaped trailing white space before a break", () => {
    expect(readScalar('"a\\t\n  b"')).toBe("a\t b");
  });
  it("reads plain scalars and nulls", () => {
    expect(readScalar("null")).toBeNull();
    expect(readScalar("~")).toBeNull();
    expect(readScalar("")).toBeNull();
    expect(readScalar("plain text # comment")).toBe("plain text");
  });
  it("reads literal and folded block scalars", () => {
    expect(readScalar("|\n    one\n    two\n")).toBe("one\ntwo\n");
    expect(readScalar(">-\n    one\n    two")).toBe("one two");
  });
});

describe("readTopLevelMapping", () => {
  it("reads quoted keys and leaves nested mappings out of other keys", () => {
    expect(readTopLevelMapping("a:\n  'x y': 1\n  \"z\": '2'\nb: 3\n", "a")).toEqual({ "x y": "1", z: "2" });
    expect(readTopLevelMapping("a: 1\n", "b")).toBeUndefined();
  });
});

describe("labels", () => {
  it("spells nested types and tensor shapes", () => {
    expect(typeLabel({ type: "array", items: { type: "array", items: { type: "long" } } })).toBe("array<array<long>>");
    expect(typeLabel({ type: "any" })).toBe("any");
    expect(shapeLabel([-1])).toBe("(-1,)");
    expect(shapeLabel([-1, 3])).toBe("(-1, 3)");
  });
});

// Written by PyYAML's safe_dump (as MLflow writes MLmodel) from a signature whose column names
// hold quotes, backslashes, tabs, non-ASCII text and long words, so the folds land inside them.
const PYYAML_MLMODEL = "flavors:\n  python_function:\n    x: 1\nsignature:\n  inputs: '[{\"type\": \"double\", \"name\": \"it''s\", \"required\": true}, {\"type\": \"double\",\n    \"name\": \"say \\\"hi\\\"\", \"required\": false}, {\"type\": \"double\", \"name\": \"caf\\u00e9\n    \\u00fcn\\u00efcode\", \"required\": true}, {\"type\": \"double\", \"name\": \"colon: and\n    # hash\", \"required\": false}, {\"type\": \"double\", \"name\": \"back\\\\slash\", \"required\":\n    true}, {\"type\": \"double\", \"name\": \"tab\\tin\", \"required\": false}, {\"type\": \"double\",\n    \"name\": \"  lead space\", \"required\": true}, {\"type\": \"double\", \"name\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\n    \"required\": false}, {\"type\": \"double\", \"name\": \"\\u65e5\\u672c\\u8a9e\", \"required\":\n    true}, {\"type\": \"double\", \"name\": \"emoji \\ud83c\\udf89\", \"required\": false}, {\"type\":\n    \"array\", \"items\": {\"type\": \"string\"}, \"name\": \"tags\", \"required\": true}, {\"type\":\n    \"object\", \"properties\": {\"a\": {\"type\": \"long\", \"required\": true}, \"b\": {\"type\":\n    \"string\", \"required\": false}}, \"name\": \"obj\", \"required\": true}]'\n  outputs: '[{\"name\": \"probs\", \"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\",\n    \"shape\": [-1, 28, 28]}}]'\n  params: '[{\"name\": \"temperature\", \"default\": 0.5, \"shape\": null, \"type\": \"double\"},\n    {\"name\": \"stop\", \"default\": [\"a\", \"b\"], \"shape\": [-1], \"type\": \"string\"}]'\nutc_time_created: '2025'\n";
const PYYAML_SIGNATURE = {"inputs": "[{\"type\": \"double\", \"name\": \"it's\", \"required\": true}, {\"type\": \"double\", \"name\": \"say \\\"hi\\\"\", \"required\": false}, {\"type\": \"double\", \"name\": \"caf\\u00e9 \\u00fcn\\u00efcode\", \"required\": true}, {\"type\": \"double\", \"name\": \"colon: and # hash\", \"required\": false}, {\"type\": \"double\", \"name\": \"back\\\\slash\", \"required\": true}, {\"type\": \"double\", \"name\": \"tab\\tin\", \"required\": false}, {\"type\": \"double\", \"name\": \"  lead space\", \"required\": true}, {\"type\": \"double\", \"name\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\", \"required\": false}, {\"type\": \"double\", \"name\": \"\\u65e5\\u672c\\u8a9e\", \"required\": true}, {\"type\": \"double\", \"name\": \"emoji \\ud83c\\udf89\", \"required\": false}, {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"name\": \"tags\", \"required\": true}, {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"long\", \"required\": true}, \"b\": {\"type\": \"string\", \"required\": false}}, \"name\": \"obj\", \"required\": true}]", "outputs": "[{\"name\": \"probs\", \"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 28, 28]}}]", "params": "[{\"name\": \"temperature\", \"default\": 0.5, \"shape\": null, \"type\": \"double\"}, {\"name\": \"stop\", \"default\": [\"a\", \"b\"], \"shape\": [-1], \"type\": \"string\"}]"};

describe("readSignature on PyYAML's output", () => {
  it("reads back exactly the JSON strings MLflow wrote", () => {
    const fields = readTopLevelMapping(PYYAML_MLMODEL, "signature")!;
    expect(fields).toEqual(PYYAML_SIGNATURE);
    const sig = readSignature(PYYAML_MLMODEL)!;
    expect(sig.inputs!.map((c) => c.name)).toEqual(["it's", "say \"hi\"", "café ünïcode", "colon: and # hash", "back\\slash", "tab\tin", "  lead space", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "日本語", "emoji 🎉", "tags", "obj"]);
    expect(sig.inputs!.map((c) => c.required)).toEqual([true, false, true, false, true, false, true, false, true, false, true, true]);
    expect(sig.inputs!.slice(-2).map((c) => c.type)).toEqual(["array<string>", "{a: long, b?: string}"]);
    expect(sig.outputs).toEqual([{ name: "probs", type: "tensor", required: true, tensor: { dtype: "float32", shape: [-1, 28, 28] } }]);
    expect(sig.params!.map((p) => p.default)).toEqual([0.5, ["a", "b"]]);
  });
});
