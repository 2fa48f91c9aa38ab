/** What a Check is about, taken from Envoy's CheckRequest (see envoy/request.ts). */
export interface AuthRequest {
  /** Upper-case HTTP method. */
  readonly method: string;
  /** The :path as Envoy sent it, with query string. */
  readonly rawPath: string;
  /** :authority / Host, as sent (may carry a port). */
  readonly host: string;
  /** Lower-case header names; repeated headers joined with ','. Null-prototype object. */
  readonly headers: Readonly<Record<string, string>>;
  /** Per-route ExtAuthzPerRoute.check_settings.context_extensions. */
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** URL scheme as Envoy received the request ("http" / "https"), when Envoy said. */
  readonly scheme?: string;
  /** The client certificate Envoy saw, URL-encoded PEM as sent (include_peer_certificate); absent without mTLS. */
  readonly clientCertificate?: string;
  /** The downstream peer as Envoy reports it (attributes.source), when it says anything. */
  readonly source?: Peer;
  /** The local side of the connection (attributes.destination), when Envoy says anything. */
  readonly destination?: Peer;
  /** x-request-id for logs: as sent when short and plain, else "invalid" (see envoy/request.ts). */
  readonly requestId?: string;
}

/** One side of the connection, as Envoy reports it. */
export interface Peer {
  /** IP address (socket_address.address), as sent. */
  readonly address?: string;
  readonly port?: number;
  /** The peer certificate's URI SAN (a SPIFFE ID), else its subject, as Envoy reports it. */
  readonly principal?: string;
}

/** The verified caller: local claims after claim_mappings. */
export interface Principal {
  /** Configured issuer name ("self" for this service's own tokens). */
  readonly issuer: string;
  readonly sub?: string;
  /** Local claims (after claim_mappings). Null-prototype object; treat as read-only. */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly scopes: ReadonlySet<string>;
  /** Space-delimited scopes. */
  readonly scope: string;
  /** Incoming token exp (epoch seconds), if any. */
  readonly exp?: number;
  /** The token's proof-of-possession confirmation (cnf), when it has one. */
  readonly confirmation?: Confirmation;
  /** Stable key of the verified token for caches of derived values (never logged). */
  readonly cacheKey: string;
}

/** What a sender-constrained token is bound to (its `cnf` claim); members are as sent, unchecked. */
export interface Confirmation {
  /** cnf["x5t#S256"]: SHA-256 thumbprint of the client certificate. */
  readonly x5tS256?: unknown;
  /** cnf.jkt: RFC 7638 thumbprint of the DPoP key. */
  readonly jkt?: unknown;
}
