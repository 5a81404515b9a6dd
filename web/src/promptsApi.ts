// The prompt registry over the registry's own routes, the calls MLflow's client makes for
// `mlflow.genai.register_prompt`, `search_prompts`, `load_prompt` and `set_prompt_alias`: a prompt
// is a registered model tagged `mlflow.prompt.is_prompt`, a prompt version a model version with
// the template in its tags and the commit message as its description.
import { del, get, post, searchRegisteredModels, type KeyValue, type ModelVersion, type RegisteredModel } from "./api";
import { IS_PROMPT_TAG, templateTags, type PromptTemplate } from "./pages/promptTemplate";

/** The source MLflow's UI gives prompt versions; the registry accepts only its placeholders. */
const PROMPT_SOURCE = "dummy-source";

const IS_PROMPT_FILTER = `tags.\`${IS_PROMPT_TAG}\` = 'true'`;

/** A string literal of the search grammar. */
function quoted(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

export function searchPrompts(opts: { search?: string; pageToken?: string; maxResults?: number }) {
  // Quotes cannot be escaped inside a LIKE pattern of the grammar, so they are dropped from it.
  const pattern = (opts.search ?? "").replace(/'/g, "");
  const filter = pattern ? `${IS_PROMPT_FILTER} AND name ILIKE '%${pattern}%'` : IS_PROMPT_FILTER;
  return searchRegisteredModels({ filter, pageToken: opts.pageToken, maxResults: opts.maxResults });
}

export async function getPrompt(name: string): Promise<RegisteredModel> {
  const r = await get<{ registered_model: RegisteredModel }>("registered-models/get", { name });
  return r.registered_model;
}

export function isPrompt(model: RegisteredModel): boolean {
  return (model.tags ?? []).some((t) => t.key === IS_PROMPT_TAG && t.value === "true");
}

/** Every version of a prompt, newest first. */
export async function listPromptVersions(name: string): Promise<ModelVersion[]> {
  const out: ModelVersion[] = [];
  let pageToken: string | undefined;
  do {
    const r = await get<{ model_versions?: ModelVersion[]; next_page_token?: string }>("model-versions/search", {
      filter: `name = ${quoted(name)} AND tag.\`${IS_PROMPT_TAG}\` = 'true'`,
      max_results: 200,
      order_by: ["version_number DESC"],
      page_token: pageToken,
    });
    out.push(...(r.model_versions ?? []));
    pageToken = r.next_page_token || undefined;
  } while (pageToken);
  return out.sort((a, b) => Number(b.version) - Number(a.version));
}

export async function createPromptVersion(name: string, template: PromptTemplate, commitMessage: string, tags: KeyValue[] = []): Promise<ModelVersion> {
  const r = await post<{ model_version: ModelVersion }>("model-versions/create", {
    name,
    source: PROMPT_SOURCE,
    description: commitMessage || undefined,
    tags: [...templateTags(template), ...tags],
  });
  return r.model_version;
}

export const setPromptAlias = (name: string, alias: string, version: string) => post("registered-models/alias", { name, alias, version });
export const deletePromptAlias = (name: string, alias: string) => del("registered-models/alias", { name, alias });
export const setPromptTag = (name: string, key: string, value: string) => post("registered-models/set-tag", { name, key, value });
export const deletePromptTag = (name: string, key: string) => del("registered-models/delete-tag", { name, key });
export const setPromptVersionTag = (name: string, version: string, key: string, value: string) =>
  post("model-versions/set-tag", { name, version, key, value });
export const deletePromptVersionTag = (name: string, version: string, key: string) => del("model-versions/delete-tag", { name, version, key });
