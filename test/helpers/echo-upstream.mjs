// The echo upstream lives in scripts/ (shipped: `npm run demo:envoy` runs it); the
// e2e tests import it from here.
export { startEcho } from '../../scripts/echo-upstream.mjs';
