// A real OpenID provider for lexgate's tests: oidc-provider on a loopback port, one confidential
// client (lexgate) and static users whose claims carry tenant, groups, clearance and role.
// Usage: node provider.mjs PORT REDIRECT_URI
// Sign-in uses the provider's development interaction: a login form where the login picks the
// user (any password); consent is granted for the first-party client.
import Provider from 'oidc-provider';

const [port, redirectUri] = process.argv.slice(2);
if (!port || !redirectUri) {
  console.error('usage: node provider.mjs PORT REDIRECT_URI');
  process.exit(2);
}

// Fictitious users. "nomad" has no tenant claim; "stranger" belongs to a tenant lexgate lacks.
const users = {
  'olivia': { name: 'Olivia Analyst', tenant: 'acme-bank', groups: ['staff', 'compliance'], clearance: 'confidential', lexgate_role: 'analyst' },
  'rhea': { name: 'Rhea Reviewer', tenant: 'acme-bank', groups: ['staff'], clearance: 'internal', lexgate_role: 'reviewer' },
  'oscar': { name: 'Oscar Admin', tenant: 'acme-bank', groups: ['staff'], clearance: 'restricted', lexgate_role: 'admin' },
  'bianca': { name: 'Bianca Analyst', tenant: 'borealis-insurance', groups: ['staff'], clearance: 'confidential', lexgate_role: 'analyst' },
  'nomad': { name: 'No Tenant' },
  'stranger': { name: 'Stranger', tenant: 'unknown-corp', groups: ['compliance'], clearance: 'public' },
};
const lexgateClaims = ['name', 'tenant', 'groups', 'clearance', 'lexgate_role'];

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'lexgate',
    client_secret: 'lexgate-test-secret',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: lexgateClaims },
  // The access attributes go into the ID token itself, not only the userinfo endpoint.
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => (users[id]
    ? { accountId: id, claims: async () => ({ sub: id, ...users[id] }) }
    : undefined),
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile');
    grant.addOIDCClaims(lexgateClaims);
    await grant.save();
    return grant;
  },
  cookies: { keys: ['lexgate-test-provider-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on http://127.0.0.1:${port}`);
});
