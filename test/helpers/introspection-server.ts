// A real RFC 7662 introspection endpoint on an ephemeral loopback port: it checks the
// client's HTTP Basic credentials, answers from a table of tokens, counts requests, and
// can be slow, down or answer garbage on demand.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type IntrospectionMode =
  'normal' | 'down' | 'status500' | 'not-json' | 'json-array' | 'active-not-boolean' | 'huge' | 'hang';

export interface IntrospectionRequest {
  readonly authorization?: string;
  readonly contentType?: string;
  readonly form: URLSearchParams;
}

export interface IntrospectionServer {
  readonly url: string;
  /** Token → answer (`active` is added as true unless the answer sets it). */
  readonly tokens: Map<string, Record<string, unknown>>;
  readonly requests: IntrospectionRequest[];
  mode: IntrospectionMode;
  /** Milliseconds to wait before answering. */
  delayMs: number;
  close(): Promise<void>;
}

export async function startIntrospectionServer(opts: {
  clientId: string;
  clientSecret: string;
}): Promise<IntrospectionServer> {
  const expected = `Basic ${Buffer.from(
    `${encodeForm(opts.clientId)}:${encodeForm(opts.clientSecret)}`,
  ).toString('base64')}`;
  const sockets = new Set<import('node:net').Socket>();
  const state = {
    tokens: new Map<string, Record<string, unknown>>(),
    requests: [] as IntrospectionRequest[],
    mode: 'normal' as IntrospectionMode,
    delayMs: 0,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      state.requests.push({
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        form,
      });
      const answer = (): void => {
        if (state.mode === 'down') {
          req.socket.destroy();
          return;
        }
        if (state.mode === 'hang') return;
        if (req.method !== 'POST' || req.headers.authorization !== expected) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="introspect"' }).end();
          return;
        }
        const send = (body: string, status = 200): void => {
          res.writeHead(status, { 'content-type': 'application/json' }).end(body);
        };
        switch (state.mode) {
          case 'status500':
            return send('{"error":"server_error"}', 500);
          case 'not-json':
            return send('<html>oops</html>');
          case 'json-array':
            return send('[{"active":true}]');
          case 'active-not-boolean':
            return send('{"active":"true","sub":"x"}');
          case 'huge':
            return send(JSON.stringify({ active: true, pad: 'x'.repeat(200_000) }));
          default: {
            const entry = state.tokens.get(form.get('token') ?? '');
            send(JSON.stringify(entry ? { active: true, ...entry } : { active: false }));
          }
        }
      };
      if (state.delayMs > 0) setTimeout(answer, state.delayMs);
      else answer();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/oauth2/introspect`,
    get tokens() {
      return state.tokens;
    },
    get requests() {
      return state.requests;
    },
    get mode() {
      return state.mode;
    },
    set mode(m: IntrospectionMode) {
      state.mode = m;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** RFC 6749 (2.3.1) form encoding, written out independently of the code under test. */
function encodeForm(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}
