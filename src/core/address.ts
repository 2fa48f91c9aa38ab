// "host:port" addresses (IPv6 hosts in brackets), read in one place: the config checks,
// the Redis node lists and the listeners all split them here.

export interface HostPortParts {
  /** The host as written, without brackets; may be empty. */
  readonly host: string;
  /** The port as written (not yet checked to be a number). */
  readonly port: string;
  /** The host was written in brackets (`[::1]:9001`). */
  readonly bracketed: boolean;
}

const HOST_PORT = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/;

/** Splits HOST:PORT or [IPV6]:PORT at its one port colon; undefined when it has another shape. */
export function splitHostPort(value: string): HostPortParts | undefined {
  const m = HOST_PORT.exec(value);
  if (!m) return undefined;
  return m[1] !== undefined
    ? { host: m[1], port: m[3]!, bracketed: true }
    : { host: m[2]!, port: m[3]!, bracketed: false };
}

/**
 * A listen address → what net.Server#listen takes: an empty host is every interface
 * (0.0.0.0), the port is digits. Undefined when malformed (the config check gives the
 * reason; see addressProblem).
 */
export function listenHostPort(value: string): { host: string; port: number } | undefined {
  const a = splitHostPort(value);
  if (!a || !/^\d+$/.test(a.port) || (a.bracketed && a.host === '')) return undefined;
  return { host: a.host || '0.0.0.0', port: Number(a.port) };
}

/** A "host:port" node address (Redis): a non-empty host, a port in 1–65535; undefined otherwise. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const a = splitHostPort(value);
  if (!a || !/^\d{1,5}$/.test(a.port)) return undefined;
  if (!(a.bracketed ? /^[0-9a-fA-F:.]+$/ : /^[^\s/]+$/).test(a.host)) return undefined;
  const port = Number(a.port);
  if (port < 1 || port > 65535) return undefined;
  return { host: a.host, port };
}
