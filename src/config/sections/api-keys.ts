import type { TokenSourceConfig } from './rules.js';
import { section, text, Type, type Static } from './kit.js';

// api_keys: key sources beside the token issuers. Each names where a client sends its key
// (one header or one query parameter) and the file of the keys it accepts.

export const ApiKeySourceSchema = section(
  {
    name: text({
      description:
        'name of this key source, used like an issuer name (rules[].require.issuers, the issuer of the principal)',
    }),
    header: Type.Optional(text({ description: 'request header holding the key (its whole value)' })),
    query: Type.Optional(
      text({ description: 'query parameter holding the key: a plain name, matched as sent' }),
    ),
    keys_file: text({
      description:
        'YAML or JSON file of the accepted keys ({id, hash, sub, scopes, claims, expires_at, disabled}), reloaded when it changes',
    }),
  },
  { description: 'one API key source: exactly one of header, query' },
);

export const ApiKeysSchema = Type.Array(ApiKeySourceSchema, {
  description: 'API key sources: a key from one of these files authenticates like a verified token',
  default: [],
});

export type ApiKeySourceConfig = Static<typeof ApiKeySourceSchema>;

/** How backends read a parameter name (case, "." "+" " " as "_"): two sources must differ in it. */
const queryKey = (name: string) => name.toLowerCase().replace(/[. +]/g, '_');

/**
 * Names unique and distinct from every issuer name and "self"; exactly one of header,
 * query; no header or query parameter shared with another key source or a token source.
 */
export function checkApiKeys(
  sources: ApiKeySourceConfig[],
  issuerNames: ReadonlySet<string>,
  tokenSources: readonly TokenSourceConfig[],
  /** Headers the service sets on an allowed request (claim headers, the minted token's). */
  injected: readonly string[],
  problems: string[],
): void {
  const names = new Map<string, number>();
  const headers = new Map<string, string>();
  const queries = new Map<string, string>();
  tokenSources.forEach((t, i) => {
    if (t.header !== undefined) headers.set(t.header.toLowerCase(), `token_sources[${i}]`);
    if (t.query !== undefined) queries.set(queryKey(t.query), `token_sources[${i}]`);
  });
  sources.forEach((src, i) => {
    const p = `api_keys[${i}]`;
    if (src.name === 'self') problems.push(`${p}.name: "self" is reserved for this service's own tokens`);
    else if (issuerNames.has(src.name))
      problems.push(`${p}.name: "${src.name}" is already an issuer name (issuers[].name)`);
    const seen = names.get(src.name);
    if (seen !== undefined) problems.push(`${p}.name: duplicate name "${src.name}" (also api_keys[${seen}])`);
    else names.set(src.name, i);
    if ((src.header === undefined) === (src.query === undefined)) {
      problems.push(`${p}: exactly one of header, query is required`);
      return;
    }
    if (src.header !== undefined) {
      const h = src.header.toLowerCase();
      if (!/^[a-z0-9!#$%&'*+\-.^_`|~]+$/.test(h) || h === 'cookie' || h === 'dpop')
        problems.push(`${p}.header: "${src.header}" is not a header a key can be read from`);
      if (injected.some((name) => name.toLowerCase() === h))
        problems.push(
          `${p}.header: "${src.header}" is a header the service sets upstream (upstream.claim_headers or upstream.token.header)`,
        );
      const other = headers.get(h);
      if (other !== undefined) problems.push(`${p}.header: "${src.header}" is already read by ${other}`);
      headers.set(h, p);
    } else {
      const q = src.query!;
      if (!/^[A-Za-z0-9\-._~!$'()*,:@/]+$/.test(q))
        problems.push(
          `${p}.query: "${q}" must be a plain parameter name (letters, digits and - . _ ~ ! $ ' ( ) * , : @ /; no percent-encoding)`,
        );
      const other = queries.get(queryKey(q));
      if (other !== undefined) problems.push(`${p}.query: "${q}" is already read by ${other}`);
      queries.set(queryKey(q), p);
    }
  });
}
