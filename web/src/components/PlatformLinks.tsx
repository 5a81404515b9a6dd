import { useEffect, useState } from "react";

export interface PlatformLink {
  name: string;
  url: string;
}

/** A link as the server gives it: absolute, or `:port/path` for another port of the host the
 * browser already reaches this server by (which the server, behind a name it does not know,
 * cannot spell itself). */
export function resolveLink(url: string, here: { protocol: string; hostname: string }): string {
  if (!url.startsWith(":")) return url;
  // Browsers give IPv6 hosts in brackets already; a bare one is bracketed here.
  const host = here.hostname.includes(":") && !here.hostname.startsWith("[") ? `[${here.hostname}]` : here.hostname;
  return `${here.protocol}//${host}${url}`;
}

/** The other parts of the platform the server was told about (`mlox up` names the notebooks),
 * shown beside the main navigation; nothing when there are none. */
export function PlatformLinks() {
  const [links, setLinks] = useState<PlatformLink[]>([]);
  useEffect(() => {
    let live = true;
    fetch("platform-links.json")
      .then((r) => (r.ok ? r.json() : { links: [] }))
      .then((answer: { links?: PlatformLink[] }) => live && setLinks(answer.links ?? []))
      .catch(() => live && setLinks([]));
    return () => {
      live = false;
    };
  }, []);
  return (
    <>
      {links.map((link) => (
        <a key={link.name} href={resolveLink(link.url, window.location)} target="_blank" rel="noopener noreferrer" data-testid="platform-link">
          {link.name}
        </a>
      ))}
    </>
  );
}
