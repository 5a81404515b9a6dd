// A trace's assessments (feedback and expectations): value, source, rationale, the span they
// judge and whether another has overridden them; each can be edited in place, a feedback can be
// overridden (a new feedback pointing at the old one, which the server marks invalid, as
// `mlflow.override_feedback` does), and new ones added.
import { useEffect, useState } from "react";
import { get } from "../api";
import { createAssessment, updateAssessment } from "../tracesApi";
import { formatTime } from "../format";
import { FormActions, useSubmit } from "./common";
import {
  assessmentKind,
  assessmentValue,
  newAssessmentBody,
  orderAssessments,
  parseValueInput,
  timestampMs,
  valueInputText,
  type Assessment,
  type AssessmentKind,
  type Span,
} from "../pages/traceModel";

/** The signed-in user's name, the source a person's assessment is recorded under. */
function useUserName(): string {
  const [name, setName] = useState("");
  useEffect(() => {
    let live = true;
    get<{ user?: { username?: string } }>("users/current").then(
      (r) => live && setName(r.user?.username ?? ""),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, []);
  return name;
}

function ValueText({ value }: { value: unknown }) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return <span className="assessment-value mono">{text ?? "—"}</span>;
}

type Editing = { mode: "edit" | "override"; assessment: Assessment } | { mode: "add" };

interface Draft {
  kind: AssessmentKind;
  name: string;
  value: string;
  rationale: string;
  source: string;
  onSpan: boolean;
}

function AssessmentForm({
  editing,
  userName,
  selectedSpan,
  onSubmit,
  onCancel,
}: {
  editing: Editing;
  userName: string;
  selectedSpan?: Span;
  onSubmit: (draft: Draft) => Promise<void>;
  onCancel: () => void;
}) {
  const existing = editing.mode === "add" ? undefined : editing.assessment;
  const [draft, setDraft] = useState<Draft>(() => ({
    kind: existing ? assessmentKind(existing) : "feedback",
    name: existing?.assessment_name ?? "",
    value: existing ? valueInputText(assessmentValue(existing)) : "",
    rationale: editing.mode === "edit" ? existing?.rationale ?? "" : "",
    source: userName,
    onSpan: false,
  }));
  const { error, saving, submit } = useSubmit();
  useEffect(() => setDraft((d) => (d.source ? d : { ...d, source: userName })), [userName]);
  const set = (patch: Partial<Draft>) => setDraft((d) => ({ ...d, ...patch }));
  const title =
    editing.mode === "add" ? "Add assessment" : editing.mode === "edit" ? `Edit ${existing!.assessment_name}` : `Override ${existing!.assessment_name}`;
  return (
    <form
      className="assessment-form card"
      aria-label={title}
      onSubmit={(e) => {
        e.preventDefault();
        submit(() => onSubmit(draft));
      }}
    >
      <h3>{title}</h3>
      <div className="assessment-fields">
        {editing.mode === "add" && (
          <>
            <label>
              Kind
              <select aria-label="Assessment kind" value={draft.kind} onChange={(e) => set({ kind: e.target.value as AssessmentKind })}>
                <option value="feedback">Feedback</option>
                <option value="expectation">Expectation</option>
              </select>
            </label>
            <label>
              Name
              <input aria-label="Assessment name" required value={draft.name} onChange={(e) => set({ name: e.target.value })} placeholder="correctness" />
            </label>
          </>
        )}
        <label>
          Value
          <input
            aria-label="Assessment value"
            className="mono"
            required
            value={draft.value}
            onChange={(e) => set({ value: e.target.value })}
            placeholder='true, 0.8, "text" or {"key": "value"}'
          />
        </label>
        {draft.kind === "feedback" && (
          <label className="wide">
            Rationale
            <textarea aria-label="Assessment rationale" rows={2} value={draft.rationale} onChange={(e) => set({ rationale: e.target.value })} />
          </label>
        )}
        {editing.mode !== "edit" && (
          <label>
            Source
            <input aria-label="Assessment source" value={draft.source} onChange={(e) => set({ source: e.target.value })} placeholder="your name" />
          </label>
        )}
        {editing.mode === "add" && selectedSpan && (
          <label className="checkbox">
            <input type="checkbox" checked={draft.onSpan} onChange={(e) => set({ onSpan: e.target.checked })} /> On span {selectedSpan.name}
          </label>
        )}
      </div>
      <FormActions submitLabel={editing.mode === "override" ? "Override" : "Save"} disabled={saving} onCancel={onCancel} error={error} />
    </form>
  );
}

export function TraceAssessments({
  traceId,
  assessments,
  spans,
  selectedSpan,
  onChanged,
}: {
  traceId: string;
  assessments: Assessment[];
  spans: Map<string, Span>;
  selectedSpan?: Span;
  onChanged: () => void;
}) {
  const userName = useUserName();
  const [editing, setEditing] = useState<Editing | null>(null);
  const ordered = orderAssessments(assessments);
  const byId = new Map(assessments.map((a) => [a.assessment_id, a]));

  const submit = async (draft: Draft) => {
    const value = parseValueInput(draft.value);
    const source = { sourceType: "HUMAN", sourceId: draft.source.trim() || "default" };
    if (!editing) return;
    if (editing.mode === "add") {
      await createAssessment(
        traceId,
        newAssessmentBody({
          traceId,
          kind: draft.kind,
          name: draft.name.trim(),
          value,
          rationale: draft.rationale.trim() || undefined,
          spanId: draft.onSpan ? selectedSpan?.id : undefined,
          ...source,
        }),
      );
    } else if (editing.mode === "edit") {
      const a = editing.assessment;
      const fresh = newAssessmentBody({ traceId, kind: assessmentKind(a), name: a.assessment_name, value, sourceType: "HUMAN", sourceId: "" });
      await updateAssessment(
        traceId,
        a.assessment_id,
        assessmentKind(a) === "feedback" ? { feedback: fresh.feedback, rationale: draft.rationale } : { expectation: fresh.expectation },
      );
    } else {
      const a = editing.assessment;
      await createAssessment(
        traceId,
        newAssessmentBody({
          traceId,
          kind: "feedback",
          name: a.assessment_name,
          value,
          rationale: draft.rationale.trim() || undefined,
          spanId: a.span_id || undefined,
          overrides: a.assessment_id,
          ...source,
        }),
      );
    }
    setEditing(null);
    onChanged();
  };

  return (
    <section className="card" aria-label="Assessments">
      <header className="card-header">
        <h2>Assessments</h2>
        <button type="button" onClick={() => setEditing({ mode: "add" })} disabled={editing?.mode === "add"}>
          Add assessment
        </button>
      </header>
      {ordered.length === 0 ? (
        <p className="muted">No feedback or expectations yet.</p>
      ) : (
        <table className="grid assessments" aria-label="Assessment list">
          <thead>
            <tr>
              <th>Name</th>
              <th>Kind</th>
              <th>Value</th>
              <th>Source</th>
              <th>Rationale</th>
              <th>Span</th>
              <th>Updated</th>
              <th className="actions" />
            </tr>
          </thead>
          <tbody>
            {ordered.map((a) => {
              const kind = assessmentKind(a);
              const valid = a.valid !== false;
              const overridden = byId.get(a.overrides ?? "");
              return (
                <tr key={a.assessment_id} data-testid="assessment-row" data-assessment-id={a.assessment_id} className={valid ? undefined : "overridden"}>
                  <th scope="row">
                    {a.assessment_name}
                    {!valid && <span className="badge">overridden</span>}
                  </th>
                  <td>
                    <span className={`badge kind-${kind}`}>{kind}</span>
                  </td>
                  <td>
                    <ValueText value={assessmentValue(a)} />
                    {a.feedback?.error && <div className="error small">{a.feedback.error.error_message ?? a.feedback.error.error_code}</div>}
                    {overridden && (
                      <div className="muted small">
                        overrides <ValueText value={assessmentValue(overridden)} />
                      </div>
                    )}
                  </td>
                  <td>
                    <span className="muted small">{a.source?.source_type}</span> {a.source?.source_id}
                  </td>
                  <td className="assessment-rationale">{a.rationale}</td>
                  <td>{a.span_id ? spans.get(a.span_id)?.name ?? <span className="mono">{a.span_id}</span> : <span className="muted">trace</span>}</td>
                  <td className="small">{formatTime(timestampMs(a.last_update_time ?? a.create_time))}</td>
                  <td className="actions">
                    {valid && (
                      <button type="button" className="link-button" aria-label={`Edit ${a.assessment_name}`} onClick={() => setEditing({ mode: "edit", assessment: a })}>
                        Edit
                      </button>
                    )}
                    {valid && kind === "feedback" && (
                      <button
                        type="button"
                        className="link-button"
                        aria-label={`Override ${a.assessment_name}`}
                        onClick={() => setEditing({ mode: "override", assessment: a })}
                      >
                        Override
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {editing && (
        <AssessmentForm
          key={editing.mode === "add" ? "add" : `${editing.mode}-${editing.assessment.assessment_id}`}
          editing={editing}
          userName={userName}
          selectedSpan={selectedSpan}
          onSubmit={submit}
          onCancel={() => setEditing(null)}
        />
      )}
    </section>
  );
}
