// The artifact browser: a lazily loaded tree beside a preview chosen by file type. HTML is shown
// only inside a sandboxed frame with no scripts, so a logged notebook cannot act on this origin.
import { useEffect, useState } from "react";
import { artifactDownloadUrl, listArtifacts, type ArtifactFile, type ArtifactSource } from "../api";
import { formatBytes, parseDelimited } from "../format";
import { ErrorBanner, Spinner } from "./common";

const TEXT = /\.(txt|log|md|py|json|ya?ml|toml|ini|cfg|sh|r|sql|ipynb|jsonl|xml|js|ts)$|(^|\/)(MLmodel|MLproject|requirements\.txt|conda\.yaml|python_env\.yaml|LICENSE)$/i;
const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
const TABLE = /\.(csv|tsv)$/i;
const HTML = /\.html?$/i;
const PREVIEW_LIMIT = 2 * 1024 * 1024;

function Tree({
  source,
  path,
  depth,
  selected,
  onSelect,
}: {
  source: ArtifactSource;
  path: string;
  depth: number;
  selected?: string;
  onSelect: (f: ArtifactFile) => void;
}) {
  const [files, setFiles] = useState<ArtifactFile[] | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [open, setOpen] = useState<Set<string>>(() => new Set(selected ? ancestors(selected) : []));
  useEffect(() => {
    if (selected) setOpen((s) => (ancestors(selected).every((a) => s.has(a)) ? s : new Set([...s, ...ancestors(selected)])));
  }, [selected]);
  useEffect(() => {
    listArtifacts(source, path).then(
      (f) => setFiles([...f].sort((a, b) => Number(b.is_dir) - Number(a.is_dir) || a.path.localeCompare(b.path))),
      setError,
    );
  }, [source.kind, source.id, path]);
  if (error) return <ErrorBanner error={error} />;
  if (!files) return <Spinner />;
  if (files.length === 0 && depth === 0) return <p className="muted">No artifacts.</p>;
  return (
    <ul className="tree" role={depth === 0 ? "tree" : "group"}>
      {files.map((f) => {
        const name = f.path.split("/").pop();
        const isOpen = open.has(f.path);
        return (
          <li key={f.path} role="treeitem" aria-expanded={f.is_dir ? isOpen : undefined} aria-selected={selected === f.path}>
            <button
              type="button"
              className={selected === f.path ? "tree-node selected" : "tree-node"}
              style={{ paddingLeft: 8 + depth * 14 }}
              onClick={() => {
                if (f.is_dir)
                  setOpen((s) => {
                    const next = new Set(s);
                    if (next.has(f.path)) next.delete(f.path);
                    else next.add(f.path);
                    return next;
                  });
                onSelect(f);
              }}
            >
              <span aria-hidden className="tree-icon">
                {f.is_dir ? (isOpen ? "▾" : "▸") : ""}
                {f.is_dir ? <FolderIcon /> : <FileIcon />}
              </span>{" "}
              {name}
            </button>
            {f.is_dir && isOpen && <Tree source={source} path={f.path} depth={depth + 1} selected={selected} onSelect={onSelect} />}
          </li>
        );
      })}
    </ul>
  );
}

// Drawn here rather than taken from an emoji font, which a server's browser may not have.
const FolderIcon = () => (
  <svg width="14" height="12" viewBox="0 0 14 12" className="icon">
    <path d="M1 2.5A1.5 1.5 0 0 1 2.5 1H5l1.5 1.5h5A1.5 1.5 0 0 1 13 4v5.5a1.5 1.5 0 0 1-1.5 1.5h-9A1.5 1.5 0 0 1 1 9.5z" fill="#93c5fd" stroke="#2563eb" />
  </svg>
);

const FileIcon = () => (
  <svg width="12" height="14" viewBox="0 0 12 14" className="icon">
    <path d="M1.5 1h6L11 4.5v8a.5.5 0 0 1-.5.5h-9a.5.5 0 0 1-.5-.5v-11A.5.5 0 0 1 1.5 1z" fill="#f1f5f9" stroke="#64748b" />
    <path d="M7.5 1v3.5H11" fill="none" stroke="#64748b" />
  </svg>
);

function ancestors(path: string): string[] {
  const parts = path.split("/");
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
}


function Preview({ source, file }: { source: ArtifactSource; file: ArtifactFile }) {
  const url = artifactDownloadUrl(source, file.path);
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const size = Number(file.file_size ?? 0);
  const kind = IMAGE.test(file.path) ? "image" : HTML.test(file.path) ? "html" : TABLE.test(file.path) ? "table" : TEXT.test(file.path) ? "text" : "binary";
  const needsText = kind === "html" || kind === "table" || kind === "text";
  useEffect(() => {
    setText(null);
    setError(null);
    if (!needsText || size > PREVIEW_LIMIT) return;
    fetch(url)
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(`${r.status} ${r.statusText}`))))
      .then(setText, setError);
  }, [url, needsText, size]);
  let body;
  if (size > PREVIEW_LIMIT && needsText) body = <p className="muted">Too large to preview ({formatBytes(size)}).</p>;
  else if (kind === "image") body = <img className="artifact-image" src={url} alt={file.path} />;
  else if (kind === "binary") body = <p className="muted">No preview for this file type.</p>;
  else if (error) body = <ErrorBanner error={error} />;
  else if (text === null) body = <Spinner />;
  else if (kind === "html")
    body = <iframe className="artifact-html" title={`Preview of ${file.path}`} sandbox="" srcDoc={text} data-testid="html-preview" />;
  else if (kind === "table") {
    const rows = parseDelimited(text, file.path.toLowerCase().endsWith(".tsv") ? "\t" : ",");
    body = (
      <div className="table-preview">
        <table className="grid" aria-label={`Table ${file.path}`}>
          <thead>
            <tr>
              {(rows[0] ?? []).map((h, i) => (
                <th key={i}>{h}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.slice(1, 500).map((r, i) => (
              <tr key={i}>
                {r.map((c, j) => (
                  <td key={j}>{c}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    );
  } else {
    let shown = text;
    if (/\.json$/i.test(file.path)) {
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // not valid JSON: show it as written
      }
    }
    body = (
      <pre className="text-preview" data-testid="text-preview">
        {shown}
      </pre>
    );
  }
  return (
    <div className="preview">
      <header className="preview-header">
        <span className="mono">{file.path}</span>
        <span className="muted">{formatBytes(file.file_size)}</span>
        <a href={url} download={file.path.split("/").pop()}>
          Download
        </a>
      </header>
      {body}
    </div>
  );
}

export function ArtifactBrowser({ source, initialPath, onPathChange }: { source: ArtifactSource; initialPath?: string; onPathChange?: (path: string) => void }) {
  const [file, setFile] = useState<ArtifactFile | null>(initialPath ? { path: initialPath, is_dir: false } : null);
  // A deep link followed while the page is open selects its file.
  useEffect(() => {
    if (initialPath) setFile((current) => (current?.path === initialPath ? current : { path: initialPath, is_dir: false }));
  }, [initialPath]);
  return (
    <div className="artifact-browser">
      <nav className="artifact-tree" aria-label="Artifacts">
        <Tree
          source={source}
          path=""
          depth={0}
          selected={file?.path}
          onSelect={(f) => {
            if (!f.is_dir) setFile(f);
            onPathChange?.(f.path);
          }}
        />
      </nav>
      <div className="artifact-preview">{file && !file.is_dir ? <Preview source={source} file={file} /> : <p className="muted">Select a file to preview it.</p>}</div>
    </div>
  );
}
