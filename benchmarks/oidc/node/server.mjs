// The reference server for benchmarks/oidc: panva's node-oidc-provider (version pinned in
// package.json), configured like idp so that the same requests do the same work:
//   - one ES256 signing key (P-256), ES256 ID tokens;
//   - RFC 9068 JWT access tokens signed with it (resourceIndicators: every token is for
//     one resource server, accessTokenFormat 'jwt', 10 min, like idp's default);
//   - client_secret_basic client authentication;
//   - client_credentials, authorization code + PKCE (S256), refresh tokens always issued
//     and rotated on every use (rotateRefreshToken: true), introspection enabled;
//   - in-memory storage, one process: MapAdapter below. (The bundled development
//     adapter is an LRU capped at 1,000 entries: under benchmark volumes it evicts live
//     grants and refresh tokens, and it rescans a grant's member list on every save.)
//   - a first-party client skips consent (loadExistingGrant grants what it asks for),
//     as idp does for --first-party clients; every authorization gets its own grant, as
//     every idp code starts its own refresh-token family.
// Usage: node server.mjs PORT CLIENTS_JSON_FILE   (prints "ready" when listening)
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const [port, clientsFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(readFileSync(clientsFile, 'utf8'));
export const RESOURCE = 'urn:idp-bench:api';

// Plain Map storage with expiry: the same contract as oidc-provider's memory adapter
// (find/upsert/destroy/consume/findByUid/findByUserCode/revokeByGrantId), no eviction.
const store = new Map(); // key -> { value, expiresAt }
const grantMembers = new Map(); // grantId -> Set of keys
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);
const get = (key) => {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.value;
};
const set = (key, value, expiresIn) => store.set(key, {
  value, expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined,
});
class MapAdapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') set(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) set(`userCode:${payload.userCode}`, id, expiresIn);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    set(key, payload, expiresIn);
  }
  async find(id) { return get(this.key(id)); }
  async findByUid(uid) { const id = get(`sessionUid:${uid}`); return id && this.find(id); }
  async findByUserCode(code) { const id = get(`userCode:${code}`); return id && this.find(id); }
  async consume(id) { const payload = get(this.key(id)); if (payload) payload.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) {
    const key = this.key(id);
    const payload = get(key);
    store.delete(key);
    if (payload?.grantId) grantMembers.get(payload.grantId)?.delete(key);
  }
  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', use: 'sig', alg: 'ES256' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clients.cc.client_id,
      client_secret: clients.cc.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: clients.rp.client_id,
      client_secret: clients.rp.client_secret,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [clients.rp.redirect_uri],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  adapter: MapAdapter,
  jwks: { keys: [signingKey] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid'], // 'api' is the resource server's scope (resourceIndicators below)
  pkce: { required: () => true },
  ttl: {
    AccessToken: 600,
    ClientCredentials: 600,
    AuthorizationCode: 60,
    RefreshToken: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    Session: 24 * 3600,
    Interaction: 600,
  },
  features: {
    devInteractions: { enabled: true }, // the built-in sign-in page (any login) drives the code flow
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: 'api',
        audience: RESOURCE,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  // Refresh tokens outlive the sign-in session (idp ends them on logout, but does not
  // look the session up on every refresh): not bound to the session here either.
  expiresWithSession: async () => false,
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId;
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    // First-party client: no consent page; grant exactly what was asked for, in a grant
    // of its own (revoking one refresh-token family must not touch the others).
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    const oidcScopes = [...ctx.oidc.requestParamOIDCScopes].join(' ');
    if (oidcScopes) grant.addOIDCScope(oidcScopes);
    for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers)) {
      grant.addResourceScope(indicator, server.scope);
    }
    await grant.save();
    return grant;
  },
});

// Quiet: no per-request logging (idp's access log goes to a file in the harness).
provider.on('server_error', (ctx, error) => console.error('server_error', error));

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
