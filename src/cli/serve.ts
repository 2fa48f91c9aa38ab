import { loadConfigFile, loadConfigObject } from '../config/load.js';
import { probeListenAddresses } from '../config/preflight.js';
import type { LoadedConfig } from '../config/types.js';
import type { ConfigError } from '../core/errors.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { App } from '../server/app.js';
import { isClusterWorker, runPrimary, shareRegistryWithPrimary } from '../server/cluster.js';
import { parseOptions } from './args.js';
import { demoSetup, printDemoInstructions } from './demo.js';
import { listenError, requireConfigFile, StartupError } from './startup.js';

/** The `serve` command: run the service until SIGTERM/SIGINT; SIGHUP reloads the config file. */
export async function serveCommand(args: string[]): Promise<void> {
  const { values } = parseOptions(args, { config: { type: 'string', short: 'c' } });
  const file = (values.config as string | undefined) ?? process.env.AUTHZ_CONFIG;
  let loaded: LoadedConfig;
  let demoToken: string | undefined;
  if (file) {
    requireConfigFile(file, values.config === undefined);
    loaded = loadConfigFile(file);
  } else {
    const demo = await demoSetup();
    loaded = loadConfigObject(demo.config, process.cwd());
    demoToken = demo.token;
  }
  const logger = createLogger(loaded.config.log.level);
  const workers = loaded.config.server.workers;
  if (!isClusterWorker()) {
    // A port taken by another process is reported here, naming the field, rather than
    // as a listener error from deep inside a server library (or, with workers, as
    // workers dying in a loop).
    const busy = await probeListenAddresses(loaded.config);
    if (busy.length > 0) throw new StartupError(busy);
  }
  if (workers > 1 && !isClusterWorker()) {
    const { shutdown_grace_seconds, drain_delay_seconds } = loaded.config.server;
    await runPrimary(
      workers,
      logger.child({ role: 'primary' }),
      shutdown_grace_seconds + drain_delay_seconds,
    );
    return;
  }
  const metrics = new Metrics();
  shareRegistryWithPrimary(metrics.registry);
  let app: App;
  try {
    app = await App.start(loaded, {
      logger: isClusterWorker() ? logger.child({ worker: process.pid }) : logger,
      metrics,
    });
  } catch (err) {
    throw listenError(loaded, err) ?? err;
  }
  if (demoToken) printDemoInstructions(demoToken, app.grpcPort, logger);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight checks');
    app
      .shutdown(undefined, app.current.config.server.drain_delay_seconds, isClusterWorker())
      .then(() => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      })
      .catch((err: Error) => {
        logger.error({ err: { message: err.message } }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!file) {
      logger.warn('SIGHUP: demo mode has no config file to reload');
      return;
    }
    let next: LoadedConfig;
    try {
      requireConfigFile(file, values.config === undefined);
      next = loadConfigFile(file);
    } catch (err) {
      logger.error(
        { problems: (err as ConfigError).problems ?? [(err as Error).message] },
        'reload rejected: the old configuration keeps serving',
      );
      return;
    }
    app.reload(next).catch((err: Error) => {
      logger.error(
        { problems: (err as ConfigError).problems ?? [err.message] },
        'reload rejected: the old configuration keeps serving',
      );
    });
  });
}
