// A model's signature (input and output schema, inference parameters) read from its MLmodel
// file, shown on the model-version and logged-model pages.
import { useAsync, ErrorBanner, Spinner } from "./common";
import { readSignature, shapeLabel, type ParamEntry, type SchemaEntry } from "./signatureSchema";
import "../models.css";

/** Reads the MLmodel file at `url` (an artifact route of the server) and shows its signature. */
export function SignatureSection({ url }: { url: string }) {
  const { data, error, loading } = useAsync(async () => {
    const r = await fetch(url);
    // A model whose artifacts hold no MLmodel (not an MLflow model format) has no signature.
    if (r.status === 404) return { missing: true as const };
    if (!r.ok) throw new Error(`MLmodel: ${r.status} ${r.statusText}`);
    return { missing: false as const, signature: readSignature(await r.text()) };
  }, [url]);
  return (
    <section className="card" aria-label="Signature">
      <header className="card-header">
        <h2>Signature</h2>
      </header>
      <ErrorBanner error={error} />
      {loading && !data ? (
        <Spinner />
      ) : !data ? null : data.missing ? (
        <p className="muted">This model has no MLmodel file.</p>
      ) : !data.signature ? (
        <p className="muted" data-testid="no-signature">
          This model was logged without a signature.
        </p>
      ) : (
        <div className="signature">
          <SchemaTable label="Inputs" entries={data.signature.inputs} />
          <SchemaTable label="Outputs" entries={data.signature.outputs} />
          {data.signature.params && <ParamsTable params={data.signature.params} />}
        </div>
      )}
    </section>
  );
}

function SchemaTable({ label, entries }: { label: string; entries: SchemaEntry[] | null }) {
  const tensors = entries?.some((e) => e.tensor) ?? false;
  return (
    <div className="signature-part">
      <h3>
        {label} {entries && <span className="muted">({entries.length})</span>}
      </h3>
      {!entries ? (
        <p className="muted">No {label.toLowerCase()} schema.</p>
      ) : (
        <table className="grid signature-table" aria-label={`Signature ${label.toLowerCase()}`}>
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              {tensors && <th>Shape</th>}
              <th>Required</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e, i) => (
              <tr key={i} data-column={e.name ?? ""}>
                <td className={e.name ? "mono" : "muted"}>{e.name ?? "—"}</td>
                <td className="mono">{e.tensor ? `tensor (${e.tensor.dtype})` : e.type}</td>
                {tensors && <td className="mono">{e.tensor ? shapeLabel(e.tensor.shape) : ""}</td>}
                <td>{e.required ? "required" : <span className="muted">optional</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function ParamsTable({ params }: { params: ParamEntry[] }) {
  return (
    <div className="signature-part">
      <h3>
        Parameters <span className="muted">({params.length})</span>
      </h3>
      <table className="grid signature-table" aria-label="Signature parameters">
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Default</th>
            <th>Shape</th>
          </tr>
        </thead>
        <tbody>
          {params.map((p, i) => (
            <tr key={i} data-param={p.name}>
              <td className="mono">{p.name}</td>
              <td className="mono">{p.type}</td>
              <td className="mono">{p.default === null ? <span className="muted">—</span> : JSON.stringify(p.default)}</td>
              <td className="mono">{p.shape ? shapeLabel(p.shape) : <span className="muted">scalar</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
