import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { extname, join, resolve } from 'node:path';
import { addressProblem, LISTEN_ADDRESSES } from './sections/server.js';
import { issuerKeySources, keySourceField, keySourcePath } from './key-sources.js';
import { CERTIFICATE_EXTENSIONS } from './sections/constants.js';
import type { AppConfig } from './types.js';
import { loadTlsMaterial, tlsEnabled } from '../net/tls-files.js';
import { listenHostPort, splitHostPort } from '../core/address.js';
import { fileErrorText } from '../core/files.js';

export { addressProblem, LISTEN_ADDRESSES };

// Checks that need the outside world: listen addresses and the files a config
// names. Address syntax is part of config validation (load.ts); reading files
// and probing ports are for `check-config` and startup.

/** One file a config names, with its config path. */
interface NamedPath {
  readonly field: string;
  readonly file: string;
  readonly folder?: boolean;
}

function signingFiles(
  field: string,
  s: { key_file?: string; secret_file?: string; previous_key_files?: string[] } | undefined,
): NamedPath[] {
  if (!s) return [];
  const out: NamedPath[] = [];
  if (s.key_file !== undefined) out.push({ field: `${field}.key_file`, file: s.key_file });
  if (s.secret_file !== undefined) out.push({ field: `${field}.secret_file`, file: s.secret_file });
  (s.previous_key_files ?? []).forEach((file, i) =>
    out.push({ field: `${field}.previous_key_files[${i}]`, file }),
  );
  return out;
}

/** Every file and folder a config names, with its config path. */
export function namedPaths(config: AppConfig): NamedPath[] {
  const out: NamedPath[] = [];
  config.issuers.forEach((iss, i) => {
    const p = `issuers[${i}]`;
    for (const kind of issuerKeySources(iss)) {
      const path = keySourcePath(iss, kind);
      if (path) out.push({ field: `${p}.${keySourceField(kind)}`, ...path });
    }
  });
  config.api_keys.forEach((k, i) => out.push({ field: `api_keys[${i}].keys_file`, file: k.keys_file }));
  const up = config.upstream.token;
  if (up) {
    out.push(...signingFiles('upstream.token.signing', up.signing));
    if (up.encryption) out.push(...signingFiles('upstream.token.encryption', up.encryption));
  }
  const te = config.token_endpoint;
  out.push(...signingFiles('token_endpoint.access_token.signing', te.access_token.signing));
  te.clients.forEach((c, i) => {
    const p = `token_endpoint.clients[${i}]`;
    if (c.certificate_file !== undefined)
      out.push({ field: `${p}.certificate_file`, file: c.certificate_file });
    if (c.jwks_file !== undefined) out.push({ field: `${p}.jwks_file`, file: c.jwks_file });
    if (c.client_secret_file !== undefined)
      out.push({ field: `${p}.client_secret_file`, file: c.client_secret_file });
  });
  return out;
}

const CERT_EXTENSIONS: ReadonlySet<string> = new Set(CERTIFICATE_EXTENSIONS);

/**
 * Reads every file and folder the config names (relative paths against baseDir) and
 * returns one problem per path that cannot be read. Contents are never echoed.
 */
export function checkConfigFiles(config: AppConfig, baseDir: string): string[] {
  const problems: string[] = [];
  // Listener certificates: readable, PEM, key matching certificate, not expired.
  for (const key of ['grpc_tls', 'http_tls'] as const) {
    const tls = config.server[key];
    if (tlsEnabled(tls)) problems.push(...loadTlsMaterial(`server.${key}`, tls, baseDir).problems);
  }
  for (const { field, file, folder } of namedPaths(config)) {
    const path = resolve(baseDir, file);
    try {
      if (folder) {
        if (!statSync(path).isDirectory()) {
          problems.push(`${field}: ${file} is not a folder`);
          continue;
        }
        for (const name of readdirSync(path)) {
          if (!CERT_EXTENSIONS.has(extname(name).toLowerCase())) continue;
          try {
            readFileSync(join(path, name));
          } catch (err) {
            problems.push(`${field}: cannot read ${join(file, name)}: ${fileErrorText(err)}`);
          }
        }
      } else {
        readFileSync(path);
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const text = folder && code === 'ENOENT' ? 'no such folder' : fileErrorText(err);
      problems.push(`${field}: cannot read ${file}: ${text}`);
    }
  }
  return problems;
}

const BIND_TEXT: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied; ports below 1024 need privileges',
  EADDRNOTAVAIL: 'not an address of this machine',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve',
};

/** A one-line explanation of a failed listen, naming the address. */
export function bindErrorText(address: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const text = (code && BIND_TEXT[code]) ?? code ?? (err as Error).message.split('\n')[0];
  return `cannot listen on ${address} (${text})`;
}

/**
 * Tries to listen on every host:port address of the config (port 0 and unix sockets
 * are skipped) and closes again; returns one problem per address that cannot be bound.
 */
export async function probeListenAddresses(config: AppConfig): Promise<string[]> {
  const problems: string[] = [];
  for (const { field, key } of LISTEN_ADDRESSES) {
    const address = config.server[key];
    // Unix sockets and an empty host (never valid here) do not split into a host and a port.
    const hostPort = splitHostPort(address)?.host ? listenHostPort(address) : undefined;
    if (!hostPort || hostPort.port === 0) continue;
    const error = await new Promise<unknown>((done) => {
      const server = createServer();
      server.once('error', done);
      server.listen({ ...hostPort, exclusive: true }, () => server.close(() => done(undefined)));
    });
    if (error) problems.push(`${field}: ${bindErrorText(address, error)}`);
  }
  return problems;
}
