/*
 * Access-token verifier for the CRM gateway (njs 0.7.9+, Debian's libnginx-mod-http-js).
 *
 * Runs as the js_content handler of the internal verifier server (see nginx.conf.template). The
 * gateway's auth_request subrequest reaches it through proxy_cache, so a token is verified with RSA
 * once and the answer is cached until the token's exp (X-Accel-Expires). Failures are never cached.
 *
 * Request:  header X-Access-Token: <compact JWS>
 * Answer:   200 + X-User-Id, X-Company-Id, X-Role, X-Session-Id, X-Accel-Expires   (valid)
 *           401 + X-Auth-Error: <short reason>                                     (anything else)
 *
 * Checks (the same rules as the services' kit, packages/kit/src/auth.ts; ONE table of cases,
 * packages/testkit/src/token-cases.ts, runs against both): at most 8192 characters, three
 * base64url parts; header alg exactly RS256, typ exactly at+jwt or application/at+jwt, a kid found
 * in the JWKS file (RSA key, use sig, alg RS256 when given), no crit; RSASSA-PKCS1-v1_5 SHA-256
 * signature; claims iss, aud (string or array), exp (required, in the future, no leeway), iat
 * (required, at most CLOCK_SKEW seconds ahead), nbf (when present, at most CLOCK_SKEW ahead),
 * sub, cid, sid lower-case UUIDs, role one of owner/admin/member.
 *
 * Settings (nginx variables of the verifier location):
 *   $crm_jwks_file    path of the JWKS json ({"keys":[{kty,kid,n,e,...}]})
 *   $crm_jwt_issuer   expected iss
 *   $crm_jwt_audience expected aud
 */
import fs from 'fs';

const MAX_TOKEN = 8192;
const CLOCK_SKEW = 60; // seconds iat and nbf may be ahead of this clock (kit: CLOCK_SKEW_SECONDS)
const ROLES = { owner: true, admin: true, member: true };
const B64URL = /^[A-Za-z0-9_-]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function isUuid(v) {
    return typeof v === 'string' && UUID.test(v);
}

function fail(r, reason) {
    r.headersOut['X-Auth-Error'] = reason;
    r.headersOut['X-Accel-Expires'] = '0';
    r.return(401);
}

function b64url(s) {
    return Buffer.from(s, 'base64url');
}

function parseJson(part) {
    try {
        const v = JSON.parse(b64url(part).toString());
        return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : null;
    } catch (e) {
        return null;
    }
}

// --- DER encoding of an RSA SubjectPublicKeyInfo from a JWK's n and e (njs 0.7.9 imports spki,
// not jwk). ------------------------------------------------------------------------------------
function derLength(n) {
    if (n < 0x80) return [n];
    const bytes = [];
    while (n > 0) {
        bytes.unshift(n & 0xff);
        n = n >>> 8;
    }
    return [0x80 | bytes.length].concat(bytes);
}

function der(tag, content) {
    return [tag].concat(derLength(content.length), content);
}

function derUint(buf) {
    let bytes = [];
    for (let i = 0; i < buf.length; i++) bytes.push(buf[i]);
    while (bytes.length > 1 && bytes[0] === 0) bytes.shift();
    if (bytes[0] & 0x80) bytes.unshift(0);
    return der(0x02, bytes);
}

// SEQUENCE { SEQUENCE { OID rsaEncryption, NULL }, BIT STRING { SEQUENCE { INTEGER n, INTEGER e } } }
const RSA_ALG_ID = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

function spkiFromJwk(jwk) {
    const rsaKey = der(0x30, derUint(b64url(jwk.n)).concat(derUint(b64url(jwk.e))));
    const bitString = der(0x03, [0].concat(rsaKey));
    return Buffer.from(der(0x30, RSA_ALG_ID.concat(bitString)));
}

function findKey(jwksFile, kid) {
    let jwks;
    try {
        jwks = JSON.parse(fs.readFileSync(jwksFile));
    } catch (e) {
        return { error: 'verifier cannot read the public keys' };
    }
    const keys = (jwks && Array.isArray(jwks.keys)) ? jwks.keys : [];
    for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        if (k && k.kid === kid) {
            if (k.kty !== 'RSA' || typeof k.n !== 'string' || typeof k.e !== 'string') return { error: 'key is not an RSA key' };
            if (k.use !== undefined && k.use !== 'sig') return { error: 'key is not a signing key' };
            if (k.alg !== undefined && k.alg !== 'RS256') return { error: 'key is not an RS256 key' };
            return { key: k };
        }
    }
    return { error: 'unknown key id' };
}

async function verify(r) {
    const token = r.headersIn['X-Access-Token'] || '';
    if (!token) return fail(r, 'missing access token');
    if (token.length > MAX_TOKEN) return fail(r, 'access token too long');
    const parts = token.split('.');
    if (parts.length !== 3 || !B64URL.test(parts[0]) || !B64URL.test(parts[1]) || !B64URL.test(parts[2])) {
        return fail(r, 'malformed access token');
    }
    const header = parseJson(parts[0]);
    const claims = parseJson(parts[1]);
    if (!header || !claims) return fail(r, 'malformed access token');
    if (header.alg !== 'RS256') return fail(r, 'token algorithm must be RS256');
    if (header.typ !== 'at+jwt' && header.typ !== 'application/at+jwt') return fail(r, 'token is not an access token');
    if (header.crit !== undefined) return fail(r, 'unsupported critical header');
    if (typeof header.kid !== 'string' || !header.kid) return fail(r, 'token has no key id');

    const found = findKey(r.variables.crm_jwks_file, header.kid);
    if (found.error) return fail(r, found.error);

    let ok = false;
    try {
        const key = await crypto.subtle.importKey('spki', spkiFromJwk(found.key),
            { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
        ok = await crypto.subtle.verify({ name: 'RSASSA-PKCS1-v1_5' }, key, b64url(parts[2]),
            parts[0] + '.' + parts[1]);
    } catch (e) {
        ok = false;
    }
    if (!ok) return fail(r, 'bad token signature');

    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== r.variables.crm_jwt_issuer) return fail(r, 'wrong token issuer');
    const aud = r.variables.crm_jwt_audience;
    if (!(claims.aud === aud || (Array.isArray(claims.aud) && claims.aud.indexOf(aud) >= 0))) {
        return fail(r, 'wrong token audience');
    }
    if (typeof claims.exp !== 'number') return fail(r, 'token has no expiry');
    if (claims.exp <= now) return fail(r, 'access token expired');
    if (typeof claims.iat !== 'number') return fail(r, 'token has no issue time');
    if (claims.iat > now + CLOCK_SKEW) return fail(r, 'token issued in the future');
    if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf > now + CLOCK_SKEW)) {
        return fail(r, 'access token not yet valid');
    }
    if (!isUuid(claims.sub) || !isUuid(claims.cid) || !isUuid(claims.sid) || typeof claims.role !== 'string' ||
        !ROLES.hasOwnProperty(claims.role)) {
        return fail(r, 'token lacks user claims');
    }
    r.headersOut['X-User-Id'] = claims.sub;
    r.headersOut['X-Company-Id'] = claims.cid;
    r.headersOut['X-Role'] = claims.role;
    r.headersOut['X-Session-Id'] = claims.sid;
    r.headersOut['X-Accel-Expires'] = String(Math.max(0, claims.exp - now));
    r.return(200);
}

const API_KEY = /^crm_live_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/;

/**
 * js_set $crm_api_key_hash: the SHA-256 (hex) of the request's API key, '' when it carries none.
 * The API-key exchange's cache key (the key itself never lands in the cache files) and its
 * rate-limit bucket.
 */
function apiKeyHash(r) {
    const token = r.variables.crm_access_token || '';
    if (!API_KEY.test(token)) return '';
    return require('crypto').createHash('sha256').update(token).digest('hex');
}

export default { verify, spkiFromJwk, apiKeyHash };
