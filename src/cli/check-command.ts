import { loadConfigFile } from '../config/load.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { explainCheckRequest } from '../server/explain-route.js';
import { Runtime } from '../server/runtime.js';
import { parseOptions, UsageError } from './args.js';
import { envoyCheckRequest, runCheck, type CheckCommandOptions } from './check.js';

/**
 * --explain: the decision with its trail, computed here from --config (the same code as
 * POST /debug/explain), with no server involved.
 */
async function runExplain(file: string, opts: CheckCommandOptions): Promise<Record<string, unknown>> {
  const request = envoyCheckRequest(opts);
  const rt = await Runtime.build(loadConfigFile(file), {
    logger: createLogger('silent'),
    metrics: new Metrics({ processMetrics: false }),
  });
  try {
    await rt.start();
    return await explainCheckRequest(rt, request);
  } finally {
    await rt.close();
  }
}

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
    explain: { type: 'boolean' },
    config: { type: 'string' },
  });
  const opts: CheckCommandOptions = {
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
  };
  const config = values.config as string | undefined;
  if (values.explain && config === undefined)
    throw new UsageError('--explain needs --config FILE: the decision is explained from that configuration');
  if (!values.explain && config !== undefined) throw new UsageError('--config goes with --explain');
  const result = values.explain ? await runExplain(config!, opts) : await runCheck(opts);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
