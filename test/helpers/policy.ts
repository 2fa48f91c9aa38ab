// Shared setup of the policy integration tests: one issuer "corp", tokens signed
// with its key, and a service started from a config built around it.
import { SignJWT } from 'jose';
import { generateEcKeyPair, makeJwks } from './keys.js';
import { startTestService, type TestService } from './harness.js';

export const CORP_ISS = 'https://idp.example.com';
export const corpKey = generateEcKeyPair({ kid: 'corp-1' });
export const otherKey = generateEcKeyPair({ kid: 'corp-1' });

export async function token(
  claims: Record<string, unknown> = {},
  opts: { key?: typeof corpKey } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const key = opts.key ?? corpKey;
  return new SignJWT({ sub: 'alice', scope: 'read', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(CORP_ISS)
    .setAudience('api://orders')
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(key.privateKey);
}

export function policyConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuers: [
      {
        name: 'corp',
        issuer: CORP_ISS,
        audiences: ['api://orders'],
        algorithms: ['ES256'],
        jwks: makeJwks(corpKey),
      },
    ],
    ...extra,
  };
}

const open: TestService[] = [];

export async function startPolicyService(extra: Record<string, unknown>): Promise<TestService> {
  const svc = await startTestService(policyConfig(extra));
  open.push(svc);
  return svc;
}

export async function closePolicyServices(): Promise<void> {
  await Promise.all(open.splice(0).map((s) => s.close()));
}

/** The problems a config is refused with when the service starts. */
export async function startupProblems(extra: Record<string, unknown>): Promise<string[]> {
  try {
    const svc = await startTestService(policyConfig(extra));
    await svc.close();
  } catch (err) {
    const problems = (err as { problems?: string[] }).problems;
    if (problems) return problems;
    return [(err as Error).message];
  }
  return [];
}
