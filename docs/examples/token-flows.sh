#!/usr/bin/env bash
# The four token-endpoint flows of docs/token-endpoint.md, run for real:
#   (a) Axway JWT flow          — a certificate client signs its own assertion
#   (b) WSO2 JWT grant          — an external identity provider's JWT, client with HTTP Basic
#   (c) Axway access token (JWT) — opaque tokens, refresh grant, introspect, revoke
#   (d) agent / MCP gateways    — client credentials, client_secret_post, token exchange, /api/oauth/token
# Every command below also appears, literally, in docs/token-endpoint.md (the test
# test/integration/docs-examples.test.ts runs this script and checks that the two agree).
#
# Needs: a built dist/ (npm run build), node, curl, openssl.
# Env: AUTHZ_GRPC_ADDRESS / AUTHZ_HTTP_ADDRESS (default 127.0.0.1:9001 / 127.0.0.1:9002).
# Exit status: 0 when every expectation held, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
  echo "FAIL: $*" >&2
  if [ -n "${WORK:-}" ] && [ -f "$WORK/server.log" ]; then
    echo "--- last lines of the server log ---" >&2
    tail -n 30 "$WORK/server.log" >&2
  fi
  exit 1
}
# expect TEXT PATTERN WHAT: TEXT must contain PATTERN (grep -E).
# The text goes in as a here-string, not through a pipe: `grep -q` exits at the first
# match, and with pipefail the writer's SIGPIPE would fail an expectation that held.
expect() {
  grep -Eq -- "$2" <<<"$1" || fail "$3: expected /$2/ in: $1"
}
expect_not() {
  if grep -Eq -- "$2" <<<"$1"; then fail "$3: did not expect /$2/ in: $1"; fi
}
stop_server() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  stop_server
  if [ -n "${WORK:-}" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' TERM INT
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
[ -f dist/main.js ] || fail "dist/main.js is missing: run npm run build first"

# ---------------------------------------------------------------- setup (doc: "Setup")
export AUTHZ_GRPC_ADDRESS=${AUTHZ_GRPC_ADDRESS:-127.0.0.1:9001}
export AUTHZ_HTTP_ADDRESS=${AUTHZ_HTTP_ADDRESS:-127.0.0.1:9002}
WORK=$(mktemp -d)
TOKEN_URL=http://$AUTHZ_HTTP_ADDRESS/oauth2

# The client's key and self-signed certificate (PKCS#8 key, as mint --key expects).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/client.pem" -out "$WORK/client.crt" -days 30 -subj /CN=SampleConfidentialApp 2>/dev/null
# The token endpoint's own signing key (ES256, PKCS#8 PEM).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/signing.pem"
# The external identity provider's key (WSO2 IS): private JWK for mint, public JWKS for the config.
node dist/main.js keygen --alg ES256 --kid wso2-1 > "$WORK/wso2is-keygen.json"
node -e 'const fs = require("fs"); const k = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); fs.writeFileSync(process.argv[2], JSON.stringify(k.private)); fs.writeFileSync(process.argv[3], JSON.stringify({ keys: [k.public] }));' "$WORK/wso2is-keygen.json" "$WORK/wso2is.jwk.json" "$WORK/wso2is-jwks.json"
# The secret of the HTTP Basic client "portal".
openssl rand -hex 24 > "$WORK/portal.secret"
PORTAL_SECRET=$(cat "$WORK/portal.secret")
# The secret of the client_secret_post client "mcp-gateway" (flow d).
openssl rand -hex 24 > "$WORK/gateway.secret"
GATEWAY_SECRET=$(cat "$WORK/gateway.secret")

# A fresh, signed client assertion: iss = sub = client_id, aud = the token endpoint, a new jti, 2 minutes.
assertion() {
  node dist/main.js mint --key "$WORK/client.pem" --alg RS256 --ttl 120 --claims "$(printf '{"iss":"SampleConfidentialApp","sub":"SampleConfidentialApp","aud":"https://authz.example.com/oauth2/token","jti":"%s"}' "$(openssl rand -hex 16)")"
}

start_server() {
  node dist/main.js serve --config "$1" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://$AUTHZ_HTTP_ADDRESS/readyz" > /dev/null && return 0; sleep 0.2; done
  echo "the service did not become ready" >&2
  return 1
}

cat > "$WORK/config.yaml" <<'EOF'
log:
  level: info
issuers:
  - name: wso2is
    issuer: https://localhost:9444/oauth2/token
    audiences: [orders-api]
    algorithms: [ES256]
    jwks_file: wso2is-jwks.json
rules:
  - name: orders-write
    match: { path_prefix: /api/orders, methods: [POST, PUT, DELETE] }
    require: { issuers: [self], scopes_all: [write] }
  - name: orders
    match: { path_prefix: /api/orders }
    require: { issuers: [self], scopes_any: [read] }
default_action: deny
token_endpoint:
  enabled: true
  issuer: https://authz.example.com
  audience: https://authz.example.com/oauth2/token
  max_assertion_lifetime_seconds: 300
  access_token:
    format: jwt
    ttl_seconds: 3600
    signing: { alg: ES256, key_file: signing.pem }
  clients:
    - client_id: SampleConfidentialApp
      certificate_file: client.crt
      scopes: [read, write]
      token_claims: { department: engineering }
      require_jti: false          # Axway's sample assertion has no jti
    - client_id: portal
      client_secret_file: portal.secret
      scopes: [read]
  grant_issuers:
    - issuer: wso2is
      audience: q5YUK9hcYLqFWzvZARGomT78z58a   # WSO2: the IdP's "Alias", the aud of its JWTs
      max_assertion_lifetime_seconds: 3600     # a stock WSO2 IS JWT lives one hour
      copy_claims: [azp]
store:
  type: memory
EOF
start_server "$WORK/config.yaml" || fail "the service (JWT access tokens) did not start"

# ---------------------------------------------------------------- (a) Axway JWT flow
ASSERTION=$(assertion)
RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion="$ASSERTION" -d format=xml)
expect "$RESPONSE" '^<\?xml version="1.0" encoding="UTF-8"\?><token_response><access_token>' "(a) XML token response"
expect "$RESPONSE" '<token_type>Bearer</token_type><expires_in>3600</expires_in><scope>read write</scope>' "(a) XML token response fields"
ACCESS_TOKEN=$(printf '%s' "$RESPONSE" | sed -n 's/.*<access_token>\([^<]*\)<\/access_token>.*/\1/p')
expect "$ACCESS_TOKEN" '^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "(a) a JWT access token"
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$ACCESS_TOKEN")
expect "$OUT" '"decision": "allow"' "(a) check GET /api/orders"
expect "$OUT" '"issuer": "self"' "(a) dynamic_metadata.issuer"
expect "$OUT" '"department": "engineering"' "(a) token_claims reach the claims"
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --method POST --path /api/orders --token="$ACCESS_TOKEN")
expect "$OUT" '"decision": "allow"' "(a) check POST /api/orders (scope write)"
# The same assertion again: its jti was already used.
RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion="$ASSERTION")
expect "$RESPONSE" '"error":"invalid_grant"' "(a) replayed assertion"
expect "$RESPONSE" 'already been used' "(a) replayed assertion description"
# Axway's sample assertion as-is (no jti): accepted once, then refused.
AXWAY_SAMPLE=$(node dist/main.js mint --key "$WORK/client.pem" --alg RS256 --ttl 300 --claims '{"iss":"SampleConfidentialApp","aud":"https://authz.example.com/oauth2/token"}')
RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion="$AXWAY_SAMPLE")
expect "$RESPONSE" '"token_type":"Bearer","expires_in":3600,"scope":"read write"' "(a) Axway sample assertion without jti"
RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion="$AXWAY_SAMPLE")
expect "$RESPONSE" '"error":"invalid_grant"' "(a) replayed jti-less assertion"

# ---------------------------------------------------------------- (b) WSO2 JWT grant
IDP_JWT=$(node dist/main.js mint --key "$WORK/wso2is.jwk.json" --ttl 3600 --claims "$(printf '{"iss":"https://localhost:9444/oauth2/token","sub":"admin","aut":"APPLICATION_USER","aud":"q5YUK9hcYLqFWzvZARGomT78z58a","azp":"q5YUK9hcYLqFWzvZARGomT78z58a","jti":"%s"}' "$(openssl rand -hex 16)")")
RESPONSE=$(curl -s -X POST -u "portal:$PORTAL_SECRET" "$TOKEN_URL/token" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion="$IDP_JWT")
expect "$RESPONSE" '"token_type":"Bearer","expires_in":3600,"scope":"read"' "(b) JSON token response"
ACCESS_TOKEN=$(printf '%s' "$RESPONSE" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$ACCESS_TOKEN")
expect "$OUT" '"decision": "allow"' "(b) check GET /api/orders"
expect "$OUT" '"sub": "admin"' "(b) sub is the identity provider's subject"
expect "$OUT" '"client_id": "portal"' "(b) client_id is the authenticated client"
expect "$OUT" '"azp": "q5YUK9hcYLqFWzvZARGomT78z58a"' "(b) copy_claims carries azp"
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --method POST --path /api/orders --token="$ACCESS_TOKEN")
expect "$OUT" '"http_status": 403' "(b) check POST /api/orders without scope write"
expect "$OUT" 'insufficient_scope' "(b) insufficient_scope"
# Without client authentication the exchange is refused.
RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion="$IDP_JWT")
expect "$RESPONSE" '"error":"invalid_client"' "(b) exchange without HTTP Basic"

stop_server

# ---------------------------------------------------------------- (c) Axway access token using JWT
cat > "$WORK/config-opaque.yaml" <<'EOF'
log:
  level: info
rules:
  - name: orders
    match: { path_prefix: /api/orders }
    require: { issuers: [self], scopes_any: [read] }
default_action: deny
token_endpoint:
  enabled: true
  issuer: https://authz.example.com
  audience: https://authz.example.com/oauth2/token
  access_token:
    format: opaque
    ttl_seconds: 3600
    opaque_length: 54
  refresh_token:
    enabled: true
    ttl_seconds: 43200
    length: 46
  clients:
    - client_id: SampleConfidentialApp
      certificate_file: client.crt
      scopes: [read, write]
      token_claims: { department: engineering }
store:
  type: memory
  purge_interval_seconds: 60
EOF
start_server "$WORK/config-opaque.yaml" || fail "the service (opaque access tokens) did not start"

RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion="$(assertion)" -d format=urlencoded)
expect "$RESPONSE" '^access_token=[A-Za-z0-9_-]{54}&token_type=Bearer&expires_in=3600&scope=read\+write&refresh_token=[A-Za-z0-9_-]{46}$' "(c) urlencoded token response"
ACCESS_TOKEN=$(printf '%s' "$RESPONSE" | tr '&' '\n' | sed -n 's/^access_token=//p')
REFRESH_TOKEN=$(printf '%s' "$RESPONSE" | tr '&' '\n' | sed -n 's/^refresh_token=//p')
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$ACCESS_TOKEN")
expect "$OUT" '"decision": "allow"' "(c) check with the opaque token"
expect "$OUT" '"department": "engineering"' "(c) stored token parameters"
RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=refresh_token -d refresh_token="$REFRESH_TOKEN" -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer -d client_assertion="$(assertion)" -d format=urlencoded)
expect "$RESPONSE" '^access_token=[A-Za-z0-9_-]{54}&token_type=Bearer&expires_in=3600&scope=read\+write&refresh_token=' "(c) refresh grant"
NEW_ACCESS_TOKEN=$(printf '%s' "$RESPONSE" | tr '&' '\n' | sed -n 's/^access_token=//p')
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$NEW_ACCESS_TOKEN")
expect "$OUT" '"decision": "allow"' "(c) check with the refreshed token"
RESPONSE=$(curl -s -X POST "$TOKEN_URL/introspect" -d token="$NEW_ACCESS_TOKEN" -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer -d client_assertion="$(assertion)")
expect "$RESPONSE" '^\{"active":true,' "(c) introspection: active"
expect "$RESPONSE" '"client_id":"SampleConfidentialApp"' "(c) introspection: client_id"
STATUS=$(curl -s -o /dev/null -w '%{http_code}\n' -X POST "$TOKEN_URL/revoke" -d token="$NEW_ACCESS_TOKEN" -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer -d client_assertion="$(assertion)")
expect "$STATUS" '^200$' "(c) revocation"
sleep 2
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$NEW_ACCESS_TOKEN")
expect "$OUT" '"http_status": 401' "(c) check after revocation"
expect "$OUT" '"reason": "token_inactive"' "(c) check after revocation: reason"
expect_not "$OUT" '"decision": "allow"' "(c) check after revocation"
RESPONSE=$(curl -s -X POST "$TOKEN_URL/introspect" -d token="$NEW_ACCESS_TOKEN" -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer -d client_assertion="$(assertion)")
expect "$RESPONSE" '^\{"active":false\}$' "(c) introspection after revocation"
# The old refresh token was rotated away: presenting it again revokes the whole grant.
RESPONSE=$(curl -s -X POST "$TOKEN_URL/token" -d grant_type=refresh_token -d refresh_token="$REFRESH_TOKEN" -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer -d client_assertion="$(assertion)")
expect "$RESPONSE" '"error":"invalid_grant"' "(c) refresh token reuse"
sleep 2
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$ACCESS_TOKEN")
expect "$OUT" '"reason": "token_inactive"' "(c) first access token after refresh reuse"

stop_server

# ---------------------------------------------------------------- (d) gateways: client credentials, client_secret_post, token exchange, the Axway path
cat > "$WORK/config-gateway.yaml" <<'EOF'
log:
  level: info
issuers:
  - name: wso2is
    issuer: https://localhost:9444/oauth2/token
    audiences: [orders-api]
    algorithms: [ES256]
    jwks_file: wso2is-jwks.json
rules:
  - name: orders
    match: { path_prefix: /api/orders }
    require: { issuers: [self], scopes_any: [read] }
default_action: deny
token_endpoint:
  enabled: true
  issuer: https://authz.example.com
  audience: https://authz.example.com/oauth2/token
  path: /api/oauth/token
  access_token:
    format: jwt
    audiences: [https://authz.example.com, https://orders.example.com]
    signing: { alg: ES256, key_file: signing.pem }
  exchange:
    subject_issuers: [wso2is]
  clients:
    - client_id: mcp-gateway
      client_secret_file: gateway.secret
      token_endpoint_auth_method: client_secret_post
      grant_types: [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange]
      exchange_audiences: [https://orders.example.com]
      scopes: [read, write]
    - client_id: portal
      client_secret_file: portal.secret
      scopes: [read]
store:
  type: memory
EOF
start_server "$WORK/config-gateway.yaml" || fail "the service (token exchange) did not start"
AXWAY_TOKEN_URL=http://$AUTHZ_HTTP_ADDRESS/api/oauth/token

RESPONSE=$(curl -s -X POST "$AXWAY_TOKEN_URL" -d grant_type=client_credentials -d client_id=mcp-gateway -d client_secret="$GATEWAY_SECRET")
GATEWAY_TOKEN=$(printf '%s' "$RESPONSE" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$GATEWAY_TOKEN")
expect "$RESPONSE" '"token_type":"Bearer","expires_in":3600,"scope":"read write"' "(d) client credentials with client_secret_post"
expect "$OUT" '"decision": "allow"' "(d) check with the client credentials token"
expect "$OUT" '"sub": "mcp-gateway"' "(d) client credentials: sub is the client_id"
STATUS=$(curl -s -o /dev/null -w '%{http_code}\n' -X POST "$TOKEN_URL/token" -d grant_type=client_credentials -d client_id=mcp-gateway -d client_secret="$GATEWAY_SECRET")
expect "$STATUS" '^404$' "(d) the default path once token_endpoint.path is set"
RESPONSE=$(curl -s -X POST "$AXWAY_TOKEN_URL" -d grant_type=client_credentials -d client_id=portal -d client_secret="$PORTAL_SECRET")
expect "$RESPONSE" '"error":"invalid_client"' "(d) client_secret_post for a client not configured for it"
RESPONSE=$(curl -s -X POST -u "portal:$PORTAL_SECRET" "$AXWAY_TOKEN_URL" -d grant_type=client_credentials)
expect "$RESPONSE" '"error":"unauthorized_client"' "(d) client credentials for a client without the grant"
USER_JWT=$(node dist/main.js mint --key "$WORK/wso2is.jwk.json" --ttl 600 --claims '{"iss":"https://localhost:9444/oauth2/token","sub":"alice","aud":"orders-api","scope":"read write"}')
RESPONSE=$(curl -s -X POST "$AXWAY_TOKEN_URL" -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange -d client_id=mcp-gateway -d client_secret="$GATEWAY_SECRET" -d subject_token="$USER_JWT" -d subject_token_type=urn:ietf:params:oauth:token-type:jwt -d actor_token="$GATEWAY_TOKEN" -d actor_token_type=urn:ietf:params:oauth:token-type:access_token -d audience=https://orders.example.com -d scope=read)
EXCHANGED_TOKEN=$(printf '%s' "$RESPONSE" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
OUT=$(node dist/main.js check --address "$AUTHZ_GRPC_ADDRESS" --path /api/orders --token="$EXCHANGED_TOKEN")
expect "$RESPONSE" '"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"' "(d) token exchange"
expect "$RESPONSE" '"scope":"read"' "(d) token exchange: down-scoped"
expect "$OUT" '"decision": "allow"' "(d) check with the exchanged token"
expect "$OUT" '"sub": "alice"' "(d) the exchanged token keeps the subject"
expect "$(tr -d ' \n' <<<"$OUT")" '"act":\{"sub":"mcp-gateway","iss":"https://authz.example.com"\}' "(d) act names the gateway"
RESPONSE=$(curl -s -X POST "$AXWAY_TOKEN_URL" -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange -d client_id=mcp-gateway -d client_secret="$GATEWAY_SECRET" -d subject_token="$EXCHANGED_TOKEN" -d subject_token_type=urn:ietf:params:oauth:token-type:access_token -d scope=write)
expect "$RESPONSE" '"error":"invalid_scope"' "(d) token exchange cannot widen the scope"
RESPONSE=$(curl -s -X POST "$AXWAY_TOKEN_URL" -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange -d client_id=mcp-gateway -d client_secret="$GATEWAY_SECRET" -d subject_token="$USER_JWT" -d subject_token_type=urn:ietf:params:oauth:token-type:jwt -d audience=https://billing.example.com)
expect "$RESPONSE" '"error":"invalid_target"' "(d) token exchange for an audience the client may not ask for"
RESPONSE=$(curl -s "http://$AUTHZ_HTTP_ADDRESS/.well-known/oauth-authorization-server")
expect "$RESPONSE" '"token_endpoint":"http://[^"]*/api/oauth/token"' "(d) discovery: token path"
expect "$RESPONSE" '"urn:ietf:params:oauth:grant-type:token-exchange"' "(d) discovery: token exchange"
expect "$RESPONSE" '"token_endpoint_auth_methods_supported":\["client_secret_basic","client_secret_post"\]' "(d) discovery: auth methods"

stop_server
echo "token-flows: all flows passed"
