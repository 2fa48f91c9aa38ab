import type { Logger } from '../observability/logger.js';
import { loadTlsMaterial, tlsFilesStamp, type TlsMaterial, type TlsSettings } from '../net/tls-files.js';

export const TLS_POLL_MS = 1_000;

/**
 * Polls a listener's certificate files; when they change and still make a valid
 * pair, hands the new material to `apply` (new connections get it, live ones keep
 * theirs). A change that does not check out is logged and the current certificate
 * stays. Returns a function that stops the polling.
 */
export function watchTlsFiles(
  field: string,
  settings: TlsSettings,
  baseDir: string,
  apply: (material: TlsMaterial) => void,
  logger: Logger,
  intervalMs = TLS_POLL_MS,
): () => void {
  let stamp = tlsFilesStamp(settings, baseDir);
  const timer = setInterval(() => {
    const now = tlsFilesStamp(settings, baseDir);
    if (now === stamp) return;
    stamp = now;
    const { material, problems } = loadTlsMaterial(field, settings, baseDir);
    if (!material) {
      logger.warn({ field, problems }, 'TLS certificate reload rejected; the current certificate stays');
      return;
    }
    try {
      apply(material);
    } catch (err) {
      logger.warn(
        { field, problems: [(err as Error).message] },
        'TLS certificate reload rejected; the current certificate stays',
      );
      return;
    }
    logger.info({ field, not_after: material.notAfter.toISOString() }, 'TLS certificate reloaded');
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
