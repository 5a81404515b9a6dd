// What the registered-model list and the prompt list (prompts are registered models too) share:
// a name search kept in the deep link, and one page of rows at a time.
import type { ReactNode } from "react";
import type { Page, RegisteredModel } from "../api";
import { ErrorBanner, NameSearchBar, Spinner, useNameSearch } from "./common";
import { Pager, useSteppedPages } from "./paging";

/** The newest of a registered model's latest versions (one per stage). */
export function latestVersion(model: RegisteredModel) {
  return [...(model.latest_versions ?? [])].sort((a, b) => Number(b.version) - Number(a.version))[0];
}

export function AliasChips({ model }: { model: RegisteredModel }) {
  return (
    <>
      {(model.aliases ?? []).map((a) => (
        <span key={a.alias} className="chip">
          @{a.alias}: v{a.version}
        </span>
      ))}
    </>
  );
}

export function RegisteredModelList({
  title,
  searchLabel,
  searchPlaceholder,
  fetchPage,
  headers,
  row,
  empty,
}: {
  title: string;
  searchLabel: string;
  searchPlaceholder: string;
  /** One page of the list for the `?search=` text and the name filter it stands for. */
  fetchPage: (search: { search: string; filter: string }, pageToken: string | undefined) => Promise<Page<RegisteredModel>>;
  headers: string[];
  row: (model: RegisteredModel) => ReactNode;
  empty: (search: string) => string;
}) {
  const nameSearch = useNameSearch();
  const pages = useSteppedPages((pageToken) => fetchPage(nameSearch, pageToken), [nameSearch.search]);
  return (
    <div className="page">
      <header className="page-header">
        <h1>{title}</h1>
      </header>
      <NameSearchBar label={searchLabel} placeholder={searchPlaceholder} onSearch={pages.restart} />
      <ErrorBanner error={pages.error} />
      {pages.loading && !pages.data ? (
        <Spinner />
      ) : (
        <table className="grid" aria-label={title}>
          <thead>
            <tr>
              {headers.map((h) => (
                <th key={h}>{h}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {(pages.data?.items ?? []).map(row)}
            {pages.data && pages.data.items.length === 0 && (
              <tr>
                <td colSpan={headers.length} className="muted">
                  {empty(nameSearch.search)}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      <Pager previous={pages.previous} next={pages.next} />
    </div>
  );
}
