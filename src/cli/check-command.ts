import { parseOptions } from './args.js';
import { runCheck } from './check.js';

/** The `check` command: send one CheckRequest and print the decision as JSON. */
export async function checkCommand(args: string[]): Promise<void> {
  const { values } = parseOptions(args, {
    address: { type: 'string' },
    token: { type: 'string' },
    method: { type: 'string' },
    path: { type: 'string' },
    host: { type: 'string' },
    header: { type: 'string', multiple: true },
    context: { type: 'string', multiple: true },
    timeout: { type: 'string' },
    'tls-ca': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  });
  const result = await runCheck({
    tlsCa: values['tls-ca'] as string | undefined,
    tlsCert: values['tls-cert'] as string | undefined,
    tlsKey: values['tls-key'] as string | undefined,
    address: (values.address as string | undefined) ?? '127.0.0.1:9001',
    token: values.token as string | undefined,
    method: (values.method as string | undefined) ?? 'GET',
    path: (values.path as string | undefined) ?? '/',
    host: (values.host as string | undefined) ?? 'localhost',
    headers: (values.header as string[] | undefined) ?? [],
    context: (values.context as string[] | undefined) ?? [],
    timeoutMs: values.timeout === undefined ? 5000 : Number(values.timeout),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
