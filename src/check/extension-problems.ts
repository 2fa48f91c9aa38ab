// What the pipeline logs about a route's context_extensions while resolving its rule.

import type { ExtensionProblemListener } from '../authz/extensions.js';
import type { Logger } from '../observability/logger.js';

/**
 * Named for its first use (ignored keys); it also hears of blank values and audiences
 * that are not allowed (both deny the request) and of attempts to loosen a configured rule.
 */
export function extensionProblemLogger(logger: Logger): ExtensionProblemListener {
  return (key, problem, rule, value) => {
    switch (problem) {
      case 'blank':
        logger.error(
          { extension_key: key },
          'context_extensions key has an empty value; request denied (check envoy.yaml)',
        );
        return;
      case 'loosening':
        logger.warn(
          { extension_key: key, extension_value: value, rule },
          'context_extensions cannot loosen the configured rule; the rule applies (check envoy.yaml)',
        );
        return;
      case 'audience':
        // An audience name is not a secret; it shows who asked for what.
        logger.error(
          { extension_key: key, audience: value, rule },
          'context_extensions audience is not in upstream.token.allowed_audiences; request denied',
        );
        return;
      case 'ignored':
        logger.debug({ extension_key: key }, 'ignored unknown context_extensions key');
    }
  };
}
