import { ISSUER_KEY_SOURCES, type IssuerConfig, type IssuerKeySourceKind } from './sections/issuers.js';

export {
  defaultRequiredClaims,
  ISSUER_KEY_SOURCES,
  issuerKeySources,
  type IssuerKeySourceKind,
} from './sections/issuers.js';

// The ways an issuer entry can name its verification keys. Validation, preflight,
// check-config, the key-source factory and the startup summary all read this list, so
// a new kind is added here once and the compiler points at every switch that misses it.

/** Kinds fetched over the network (everything else is read locally). */
export const REMOTE_KEY_SOURCES: ReadonlySet<IssuerKeySourceKind> = new Set(['jwks_uri', 'discovery_uri']);

/** The key source an issuer entry names (the first set, when validation let it through). */
export function issuerKeySource(iss: IssuerConfig): IssuerKeySourceKind | undefined {
  return ISSUER_KEY_SOURCES.find((k) => iss[k] !== undefined);
}

/** Config path, under the issuer entry, of the value that locates a kind's keys. */
export function keySourceField(kind: IssuerKeySourceKind): string {
  if (kind === 'truststore') return 'truststore.path';
  // The one local file an introspection entry reads (its endpoint is checked at load).
  if (kind === 'introspection') return 'introspection.client_secret_file';
  return kind;
}

/** The local file or folder a key-source kind reads, if it reads one. */
export function keySourcePath(
  iss: IssuerConfig,
  kind: IssuerKeySourceKind,
): { file: string; folder?: true } | undefined {
  switch (kind) {
    case 'jwks_file':
      return iss.jwks_file === undefined ? undefined : { file: iss.jwks_file };
    case 'secret_file':
      return iss.secret_file === undefined ? undefined : { file: iss.secret_file };
    case 'truststore':
      return iss.truststore === undefined ? undefined : { file: iss.truststore.path, folder: true };
    case 'introspection':
      return iss.introspection === undefined ? undefined : { file: iss.introspection.client_secret_file };
    default:
      return undefined;
  }
}
