export {
  createTokenService,
  CLIENT_ASSERTION_TYPE_JWT,
  GRANT_JWT_BEARER,
  GRANT_REFRESH_TOKEN,
  type OAuthRequest,
  type OpaqueLookup,
  type SelfTokenSupport,
  type TokenService,
  type TokenServiceContext,
} from './token-service.js';
export { registerOAuthRoutes, rewriteTokenPath } from './routes.js';
export { OAuthError, type HttpAnswer } from './answers.js';
