/*
 * CORS for Connect, gRPC-Web and REST callers on other origins (njs 0.7.9+), per the Fetch
 * standard: only the origins listed in CRM_GW_CORS_ORIGINS (exact `scheme://host[:port]`,
 * separated by spaces or commas; empty, the default: none) get CORS headers. A listed origin's
 * preflight (OPTIONS with Access-Control-Request-Method) is answered 204 by the gateway itself,
 * before any token check; its real requests get Access-Control-Allow-Origin (that origin, never
 * `*`, since credentials are allowed) and the headers a Connect or gRPC-Web client must read.
 * Any other origin gets none of these, so the browser refuses to hand it the answer.
 */

/** The configured origins ($crm_cors_origins, set from CRM_GW_CORS_ORIGINS). */
function allowed(r) {
    return (r.variables.crm_cors_origins || '').split(/[\s,]+/).filter(function (o) { return o !== ''; });
}

/** js_set $crm_cors_origin: the request's Origin when it is listed, else ''. */
function origin(r) {
    const o = r.headersIn.Origin;
    if (o === undefined || o === '' || o === 'null') return '';
    return allowed(r).indexOf(o) >= 0 ? o : '';
}

/** js_set $crm_cors_preflight: '1' for a listed origin's preflight (answered 204 at once). */
function preflight(r) {
    return r.method === 'OPTIONS' && r.headersIn['Access-Control-Request-Method'] !== undefined && origin(r) !== '' ? '1' : '';
}

/** js_set $crm_cors_vary: 'Origin' whenever CORS is configured (answers differ by Origin). */
function vary(r) {
    return allowed(r).length ? 'Origin' : '';
}

export default { origin, preflight, vary };
