import { isDeepStrictEqual } from 'node:util';
import { MemoryReplayCache } from '../authn/dpop.js';
import { createKeySource, keySourceSettings } from '../authn/keys/index.js';
import type { KeySource } from '../authn/keys/key-source.js';
import type { IssuerConfig, StoreConfig } from '../config/types.js';
import { Shared } from '../core/shared.js';
import type { Logger } from '../observability/logger.js';
import { createStore, type Store } from '../store/index.js';
import type { BuildContext } from './compile-config.js';

// What a reload hands from the running runtime to the new one: a store or key source
// whose settings did not change is taken over (reference-counted), not built afresh, so
// it keeps its state (revocations, used jtis, tokens; fetched keys and refresh schedule).

/** A key source with the settings it was built from (see keySourceSettings). */
export interface HeldKeySource {
  readonly settings: Record<string, unknown>;
  readonly shared: Shared<KeySource>;
}

/**
 * The issuer's key source: the previous runtime's (`before`) when its settings are
 * unchanged (`kept`), else a new one.
 */
export function takeKeySource(
  iss: IssuerConfig,
  before: HeldKeySource | undefined,
  ctx: BuildContext,
): { held: HeldKeySource; kept: boolean } {
  const settings = keySourceSettings(iss, ctx.baseDir);
  const shared = before && isDeepStrictEqual(before.settings, settings) ? before.shared.acquire() : undefined;
  if (shared) return { held: { settings, shared }, kept: true };
  return { held: { settings, shared: new Shared(createKeySource(iss, ctx), (s) => s.close()) }, kept: false };
}

/**
 * The previous runtime's store when the `store` section is unchanged, else a new one
 * (and a log line saying so).
 */
export function takeStore(
  cfg: StoreConfig,
  logger: Logger,
  previous: { readonly cfg: StoreConfig; readonly held: Shared<Store> | undefined } | undefined,
): Shared<Store> {
  const before = previous?.held;
  if (before && previous && isDeepStrictEqual(previous.cfg, cfg)) {
    const shared = before.acquire();
    if (shared) return shared;
  } else if (before) {
    const fields = { previous_type: before.value.type, type: cfg.type };
    if (before.value.type === 'memory') {
      logger.warn(
        fields,
        'store settings changed: a new store was built; revocations, used assertion jtis, opaque and refresh tokens held in the old in-memory store are not carried over',
      );
    } else {
      logger.info(
        fields,
        'store settings changed: a new store was built; entries written under the old settings are not carried over',
      );
    }
  }
  return new Shared(createStore(cfg, { logger }), (s) => s.close());
}

// One per process, so a reload does not forget the DPoP proofs already seen.
let memoryReplay: MemoryReplayCache | undefined;
export const processReplayCache = (): MemoryReplayCache => (memoryReplay ??= new MemoryReplayCache());

// Key sources started once, whichever runtime asked first: a source carried over by a
// reload is already running and must not fetch again.
const started = new WeakMap<KeySource, Promise<void>>();
export function startOnce(source: KeySource): Promise<void> {
  let p = started.get(source);
  if (!p) {
    p = source.start();
    started.set(source, p);
  }
  return p;
}
