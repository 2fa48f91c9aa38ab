// Decision builders shared by the unit tests of their encodings.
import type { Allow } from '../../src/core/decision.js';

/** An allow with nothing to set or remove, plus the given fields. */
export function allowDecision(extra: Partial<Allow> = {}): Allow {
  return {
    kind: 'allow',
    headers: [],
    headersToRemove: [],
    queryParametersToRemove: [],
    reason: 'authenticated',
    ...extra,
  };
}
