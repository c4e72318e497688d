// Signing keys, a JWKS and JWTs made by the tests themselves (node:crypto),
// including the malformed and malicious ones an attacker would send.
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const json64 = (obj) => b64u(JSON.stringify(obj));

/** An issuer with RSA, EC P-256 and Ed25519 keys. */
export function makeIssuer() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ed = generateKeyPairSync('ed25519');
  const keys = {
    rsa: { kid: 'rsa-1', alg: 'RS256', ...rsa },
    ec: { kid: 'ec-1', alg: 'ES256', ...ec },
    ed: { kid: 'ed-1', alg: 'EdDSA', ...ed },
  };
  const jwks = {
    keys: Object.values(keys).map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, use: 'sig' })),
  };
  return { keys, jwks };
}

/**
 * A compact JWS. opts.alg / opts.kid override the key's; opts.key picks
 * 'rsa' | 'ec' | 'ed'; opts.ps256 signs RSA-PSS.
 */
export function makeToken(issuer, claims, opts = {}) {
  const k = issuer.keys[opts.key ?? 'rsa'];
  const alg = opts.alg ?? (opts.ps256 ? 'PS256' : k.alg);
  const header = { alg, typ: 'JWT', kid: opts.kid ?? k.kid, ...(opts.header ?? {}) };
  const input = `${json64(header)}.${json64(claims)}`;
  let sig;
  if (alg === 'none') sig = Buffer.alloc(0);
  else if (alg === 'HS256') sig = createHmac('sha256', opts.hmacKey).update(input).digest();
  else if (alg === 'RS256') sig = sign('sha256', Buffer.from(input), k.privateKey);
  else if (alg === 'PS256')
    sig = sign('sha256', Buffer.from(input), { key: k.privateKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 });
  else if (alg === 'ES256') sig = sign('sha256', Buffer.from(input), { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'EdDSA') sig = sign(null, Buffer.from(input), k.privateKey);
  else throw new Error(`makeToken: alg ${alg}`);
  return `${input}.${b64u(sig)}`;
}

/** Standard claims for `aud`/`iss`, valid for an hour from now. */
export function claims(iss, aud, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss, aud, sub: 'alice', iat: now, nbf: now, exp: now + 3600, scope: 'mcp:read', ...extra };
}
