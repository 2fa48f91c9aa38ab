// One credential per request and nothing unverified upstream, through the real Envoy
// (the shipped envoy/envoy.yaml on loopback ports, as in envoy.e2e.test.ts): what Envoy
// does with two HTTP/1.1 Cookie lines, which query spellings survive to the upstream,
// what query_parameters_to_remove can and cannot remove, and the method-override headers
// as the echo upstream receives them.
import { connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import type { ExtAuthzRecorder } from '../helpers/ext-authz-recorder.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import {
  echoOf,
  httpGet as http1,
  inlineIssuer,
  startStack,
  type Echo,
  type Reply,
  type Stack,
} from '../helpers/stack.js';
import { jwtMinter } from '../helpers/tokens.js';

const envoy = await envoyOrSkip('Envoy credentials end to end');

const ISSUER = 'https://idp.creds.test';
const AUDIENCE = 'api://creds';
const idpKey = generateEcKeyPair({ kid: 'creds-1' });
const OVERRIDES = ['x-http-method-override', 'x-http-method', 'x-method-override'];

const token = jwtMinter(idpKey, { iss: ISSUER, aud: AUDIENCE, sub: 'alice', scope: 'read' });

const serviceConfig = {
  issuers: [inlineIssuer(ISSUER, AUDIENCE, idpKey)],
  token_sources: [
    { header: 'authorization', prefix: 'Bearer ' },
    { query: 'access_token' },
    { cookie: 'access_token' },
  ],
  rules: [
    { name: 'reader', match: { path_separated_prefix: '/get-only', methods: ['GET'] } },
    { name: 'no-writes', match: { path_separated_prefix: '/get-only' }, action: 'deny' },
  ],
  default_action: 'authenticate',
  upstream: { claim_headers: { 'x-user-id': 'sub' } },
};

/**
 * HTTP/1.1 written byte for byte on a socket: node:http's client joins a cookie array
 * into one line itself, so two real Cookie lines need a raw request.
 */
function rawHttp1(port: number, path: string, headerLines: string[]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`timeout on ${path}`)));
    socket.on('error', reject);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const split = text.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines)
        headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(split + 4) });
    });
    socket.write(
      [`GET ${path} HTTP/1.1`, '127.0.0.1', ...headerLines, 'connection: close', '', '']
        .join('\r\n')
        .replace('\r\n127.0.0.1\r\n', `\r\nhost: 127.0.0.1:${port}\r\n`),
    );
  });
}

/** The Cookie lines the upstream received, as sent on the wire. */
const cookieLines = (seen: Echo): string[] =>
  seen.rawHeaders.filter((_, i) => i % 2 === 1 && seen.rawHeaders[i - 1]!.toLowerCase() === 'cookie');

function expectRefused(reply: Reply) {
  expect(reply.status, reply.body).toBe(400);
  expect(JSON.parse(reply.body)).toEqual({ error: 'invalid_request' });
}

describe.skipIf(!envoy)(
  `Envoy ${envoy?.version ?? ''}: one credential per request, nothing unverified upstream`,
  () => {
    let stack: Stack;
    let recorder: ExtAuthzRecorder;
    let proxy: RunningEnvoy;
    let echoed = 0;

    beforeAll(async () => {
      stack = await startStack(envoy!, {
        config: serviceConfig,
        recorder: true,
        dirPrefix: 'envoy-creds-',
        envoy: {
          mutate: (d) => {
            const hcm = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
            delete hcm.access_log;
            hcm.route_config.virtual_hosts[0].routes.unshift({
              name: 'maybe',
              match: { path_separated_prefix: '/maybe' },
              route: { cluster: 'backend' },
              typed_per_filter_config: {
                'envoy.filters.http.ext_authz': {
                  '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
                  check_settings: { context_extensions: { action: 'optional' } },
                },
              },
            });
          },
        },
      });
      ({ recorder, envoy: proxy } = stack);
      stack.upstream.on('request', () => echoed++);
    }, 60_000);

    afterAll(() => stack?.stop());

    const checkRequestFor = (id: string): any => {
      const found = recorder.requests.find((r) => r.attributes.request.http.headers['x-test-id'] === id);
      expect(found, `CheckRequest for ${id}`).toBeDefined();
      return found;
    };

    describe('two Cookie lines over HTTP/1.1 (raw socket)', () => {
      // node:http's parsed headers would join the upstream's lines again: rawHeaders shows them.
      it('Envoy joins them with "," in the CheckRequest and forwards the two lines upstream', async () => {
        const seen = echoOf(
          await rawHttp1(proxy.port, '/public/x', ['x-test-id: c-1', 'cookie: a=1', 'cookie: b=2']),
        );
        expect(checkRequestFor('c-1').attributes.request.http.headers.cookie).toBe('a=1,b=2');
        expect(cookieLines(seen)).toEqual(['a=1', 'b=2']);
      });

      it('public route: a token cookie on the second line does not reach the upstream', async () => {
        const seen = echoOf(
          await rawHttp1(proxy.port, '/public/x', [
            'x-test-id: c-2',
            'cookie: a=1; b=2',
            'cookie: access_token=forged',
            'cookie: c=3',
          ]),
        );
        expect(checkRequestFor('c-2').attributes.request.http.headers.cookie).toBe(
          'a=1; b=2,access_token=forged,c=3',
        );
        expect(cookieLines(seen)).toEqual(['a=1; b=2; c=3']);
        expect(JSON.stringify(seen)).not.toContain('forged');
      });

      it('optional route: the token cookie on the second line is read (a present token must verify) → 401, nothing forwarded', async () => {
        const before = echoed;
        const reply = await rawHttp1(proxy.port, '/maybe/x', ['cookie: a=1', 'cookie: access_token=forged']);
        expect(reply.status).toBe(401);
        expect(echoed).toBe(before);
        const anon = echoOf(
          await rawHttp1(proxy.port, '/maybe/x', ['cookie: a=1', 'cookie: ACCESS_TOKEN=forged']),
        );
        expect(cookieLines(anon)).toEqual(['a=1']);
      });

      it('authenticated route: a valid header token and a token cookie on a second line → 400, nothing forwarded', async () => {
        const before = echoed;
        expectRefused(
          await rawHttp1(proxy.port, '/api/x', [
            `authorization: Bearer ${token()}`,
            'cookie: a=1',
            'cookie: access_token=forged',
          ]),
        );
        expect(echoed).toBe(before);
      });

      it('optional route: two token cookie lines → 400', async () => {
        expectRefused(
          await rawHttp1(proxy.port, '/maybe/x', [
            `cookie: access_token=${token()}`,
            'cookie: access_token=forged',
          ]),
        );
      });
    });

    describe('query spellings', () => {
      const spellings = [
        'ACCESS_TOKEN',
        'access.token',
        'access+token',
        'access_token[]',
        'access%5Ftoken',
        'Access_Token%5B%5D',
      ];

      it('public route: no spelling of the token parameter stays in the upstream URL; the others stay in order', async () => {
        const q = spellings.map((s, i) => `${s}=forged${i}&k${i}=${i}`).join('&');
        const seen = echoOf(await http1(proxy.port, `/public/x?a=1&${q}`));
        expect(seen.path).toBe(`/public/x?a=1&${spellings.map((_, i) => `k${i}=${i}`).join('&')}`);
      });

      it('optional route without a header: a forged spelling is removed and the caller is anonymous', async () => {
        const seen = echoOf(await http1(proxy.port, '/maybe/x?ACCESS_TOKEN=forged&z=1'));
        expect(seen.path).toBe('/maybe/x?z=1');
        expect(seen.headers['x-user-id']).toBeUndefined();
      });

      it('authenticated route: a forged query token beside a valid header token → 400 under every spelling, nothing forwarded', async () => {
        const before = echoed;
        for (const s of ['access_token', ...spellings]) {
          const reply = await http1(proxy.port, `/api/x?${s}=forged`, { authorization: `Bearer ${token()}` });
          expect(reply.status, s).toBe(400);
          expectRefused(reply);
        }
        expect(echoed).toBe(before);
        // the valid header token alone still passes
        expect(
          echoOf(await http1(proxy.port, '/api/x?z=1', { authorization: `Bearer ${token()}` })).path,
        ).toBe('/api/x?z=1');
      });

      // Envoy splits the query on "&" only and compares raw keys: listing "access_token"
      // leaves "a=1;access_token=…" intact, and listing "a" would drop every "a" parameter.
      it('what query_parameters_to_remove does with a ";"-separated parameter (Envoy answered directly)', async () => {
        recorder.mode = {
          kind: 'answer',
          response: { status: { code: 0 }, ok_response: { query_parameters_to_remove: ['access_token'] } },
        };
        try {
          const kept = echoOf(await http1(proxy.port, '/public/x?a=1;access_token=forged&b=2'));
          expect(kept.path).toBe('/public/x?a=1;access_token=forged&b=2');
          recorder.mode = {
            kind: 'answer',
            response: { status: { code: 0 }, ok_response: { query_parameters_to_remove: ['a'] } },
          };
          const dropped = echoOf(await http1(proxy.port, '/public/x?a=1;access_token=forged&b=2&a=keep'));
          expect(dropped.path).toBe('/public/x?b=2');
        } finally {
          recorder.mode = { kind: 'forward' };
        }
      });

      it('so a ";"-separated token parameter is refused (400) on every route, before the upstream', async () => {
        const before = echoed;
        for (const path of ['/public/x', '/maybe/x', '/api/x'])
          expectRefused(
            await http1(proxy.port, `${path}?a=1;access_token=forged`, {
              authorization: `Bearer ${token()}`,
            }),
          );
        expect(echoed).toBe(before);
        expect(echoOf(await http1(proxy.port, '/public/x?a=1;b=2')).path).toBe('/public/x?a=1;b=2');
      });
    });

    describe('method override headers', () => {
      const overrides = Object.fromEntries(OVERRIDES.map((h) => [h, 'DELETE']));

      for (const [name, path, auth] of [
        ['GET-only rule (authenticated)', '/get-only/x', true],
        ['public route', '/public/x', false],
        ['optional route', '/maybe/x', false],
      ] as const) {
        it(`${name}: the upstream does not see them`, async () => {
          const headers: Record<string, string> = { ...overrides };
          if (auth) headers.authorization = `Bearer ${token()}`;
          const seen = echoOf(await http1(proxy.port, path, headers));
          expect(seen.method).toBe('GET');
          for (const h of OVERRIDES) expect(seen.headers[h], h).toBeUndefined();
        });
      }
    });
  },
);
