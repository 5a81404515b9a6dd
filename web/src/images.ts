// Images logged with `mlflow.log_image(image, key=…, step=…)`. The client writes each one as
// `images/<key>+step+<n>+timestamp+<ms>+<uuid>.png` plus a `+compressed.webp` thumbnail, with
// `/` in the key spelled `~`; clients before 3.x used `%` as the separator and `#` for `/`.

export interface LoggedImage {
  key: string;
  step: number;
  timestamp: number;
  /** The full-resolution file, relative to the run's artifact root. */
  path: string;
  /** The small copy made for display, when the client wrote one. */
  thumbnail?: string;
}

const NAME = /^(.+?)([+%])step\2(-?\d+)\2timestamp\2(\d+)\2([0-9a-fA-F-]+)(\2compressed)?\.(\w+)$/;

export function parseImageFileName(file: string): { key: string; step: number; timestamp: number; id: string; compressed: boolean } | null {
  const base = file.split("/").pop() ?? "";
  const m = NAME.exec(base);
  if (!m) return null;
  const key = m[2] === "+" ? m[1].replace(/~/g, "/") : m[1].replace(/#/g, "/");
  return { key, step: Number(m[3]), timestamp: Number(m[4]), id: m[5], compressed: Boolean(m[6]) };
}

/** Each key's images ordered by step (then time), keys by name. */
export function groupLoggedImages(paths: string[]): Map<string, LoggedImage[]> {
  const byId = new Map<string, LoggedImage>();
  for (const path of paths) {
    const parsed = parseImageFileName(path);
    if (!parsed) continue;
    const entry = byId.get(parsed.id) ?? { key: parsed.key, step: parsed.step, timestamp: parsed.timestamp, path: "" };
    if (parsed.compressed) entry.thumbnail = path;
    else entry.path = path;
    byId.set(parsed.id, entry);
  }
  const groups = new Map<string, LoggedImage[]>();
  for (const image of byId.values()) {
    if (!image.path) image.path = image.thumbnail ?? "";
    const list = groups.get(image.key) ?? [];
    list.push(image);
    groups.set(image.key, list);
  }
  for (const list of groups.values()) list.sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
  return new Map([...groups.entries()].sort(([a], [b]) => a.localeCompare(b)));
}
