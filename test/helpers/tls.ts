// A test PKI made with the openssl CLI: a CA, server certificates for localhost /
// 127.0.0.1 and client certificates, all signed by the CA, in a temp folder.
import { execFileSync } from 'node:child_process';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  /** Issues a leaf certificate signed by the CA; returns its cert and key file paths. */
  issue(name: string, opts?: { server?: boolean; cn?: string }): { cert: string; key: string };
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'authz-pki-'));
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  let serial = 1;
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    issue(name, opts = {}) {
      const server = opts.server ?? true;
      const ext = join(dir, `${name}.ext`);
      writeFileSync(
        ext,
        server
          ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
          : `subjectAltName=URI:spiffe://test/${name}\nextendedKeyUsage=clientAuth\n`,
      );
      openssl(
        [
          'req',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          `${name}.key`,
          '-out',
          `${name}.csr`,
          '-subj',
          `/CN=${opts.cn ?? name}`,
        ],
        dir,
      );
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-set_serial',
          String(serial++),
          '-days',
          '1',
          '-extfile',
          ext,
          '-out',
          `${name}.crt`,
        ],
        dir,
      );
      return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface HttpsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * Sends the request `send` makes (node:http's or node:https' request with this callback) and
 * collects the reply; 10 s at the most.
 */
export function collectReply(
  path: string,
  send: (onResponse: (res: IncomingMessage) => void) => ClientRequest,
): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = send((res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

/** GET over TLS to 127.0.0.1 with a client certificate (PEM key and certificate); the server is not verified. */
export function httpsGet(
  port: number,
  path: string,
  client: { key: string; cert: string },
  headers: Record<string, string> = {},
): Promise<HttpsReply> {
  return collectReply(path, (onResponse) =>
    request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'GET',
        headers,
        key: client.key,
        cert: client.cert,
        rejectUnauthorized: false,
        agent: false,
      },
      onResponse,
    ),
  );
}

/** Envoy's downstream TLS transport socket that requires a client certificate from `caFile`. */
export function mtlsTransportSocket(certFile: string, keyFile: string, caFile: string) {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      require_client_certificate: true,
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { filename: certFile }, private_key: { filename: keyFile } }],
        validation_context: { trusted_ca: { filename: caFile } },
      },
    },
  };
}
