/*
 * REST aliases of the original design that nginx cannot map with a plain rewrite (njs 0.7.9+):
 * the ones with path parameters (POST /chats/{chatID}/sendMessage) and the GET ones
 * (GET /chats/{chatID}/messages, GET /timer/get-working-timer). Each becomes ONE Connect unary
 * JSON call (POST <rpc>, Content-Type: application/json) to the same handler, as a subrequest of
 * the public Connect location; the service's answer (status, JSON body, cookies) is passed back.
 *
 * Message = the JSON body (POST) or the query parameters (GET, lowerCamelCase field names; values
 * as strings, which proto3 JSON accepts for numbers too), then the path parameters on top.
 *
 * Variables set by the generated location (conf/rest-aliases.conf):
 *   $crm_rest_rpc     /crm.chat.v1.ChatService/SendMessage
 *   $crm_rest_params  chatId=<value>[&field=<value>...]   (values already checked by the regex)
 */

function jsonError(r, status, code, message) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({ code: code, message: message }) + '\n');
}

function message(r) {
    let msg = {};
    if (r.method === 'POST') {
        const text = r.requestText || '';
        if (text.trim() !== '') {
            try {
                msg = JSON.parse(text);
            } catch (e) {
                return { error: 'request body is not valid JSON' };
            }
            if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
                return { error: 'request body must be a JSON object' };
            }
        }
    } else {
        const args = r.args;
        for (const k in args) {
            if (k === 'connect' || k === 'encoding') continue;
            msg[k] = args[k];
        }
    }
    const spec = r.variables.crm_rest_params || '';
    if (spec) {
        const pairs = spec.split('&');
        for (let i = 0; i < pairs.length; i++) {
            const eq = pairs[i].indexOf('=');
            if (eq > 0) msg[pairs[i].slice(0, eq)] = pairs[i].slice(eq + 1);
        }
    }
    return { msg: msg };
}

function passBack(r, reply) {
    const h = reply.headersOut;
    if (h['Content-Type']) r.headersOut['Content-Type'] = h['Content-Type'];
    if (h['Set-Cookie']) r.headersOut['Set-Cookie'] = h['Set-Cookie'];
    if (h['Retry-After']) r.headersOut['Retry-After'] = h['Retry-After'];
    if (h['WWW-Authenticate']) r.headersOut['WWW-Authenticate'] = h['WWW-Authenticate'];
    r.return(reply.status, reply.responseText || '');
}

async function forward(r) {
    const m = message(r);
    if (m.error) return jsonError(r, 400, 'invalid_argument', m.error);
    let reply;
    try {
        reply = await r.subrequest(r.variables.crm_rest_rpc, { method: 'POST', body: JSON.stringify(m.msg) });
    } catch (e) {
        return jsonError(r, 502, 'unavailable', 'the service did not answer; retry later');
    }
    passBack(r, reply);
}

/*
 * Where GET /auth/refresh may send the browser back to: `next` as the browser will read it, and
 * only when that is a path on this site; anything else is '/'. A browser parses a Location with the
 * WHATWG URL parser, which first strips leading and trailing C0 controls and spaces, removes every
 * tab, CR and LF, and reads a backslash as a slash (http/https), so "/\t/evil.example",
 * "/\\evil.example" and " //evil.example" all mean //evil.example, another site. The same
 * steps are done here, then the value must be "/" followed by anything but "/" (a path, not
 * //host or scheme:). The answer is percent-encoded printable ASCII, which every parser reads
 * the same way. (`next` arrives percent-decoded once, as r.args gives it; a repeated `next` is
 * an array and ignored.)
 */
function safeNext(value) {
    if (typeof value !== 'string') return '/';
    const s = value.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '').replace(/[\t\n\r]/g, '').replace(/\\/g, '/');
    if (s.charAt(0) !== '/' || s.charAt(1) === '/') return '/';
    let out;
    try {
        // keep what is already percent-encoded, encode the rest (throws on a lone surrogate)
        out = s.split('%').map(encodeURI).join('%');
    } catch (e) {
        return '/';
    }
    if (!/^\/[^\/][\x21-\x7e]*$/.test(out) && out !== '/') return '/';
    if (out.toLowerCase().indexOf('/auth/refresh') === 0) return '/'; // no redirect loop
    return out;
}

/* GET /auth/refresh?next=/chats/... (a browser sent here after a 401): refresh with the
 * refresh_token cookie, then go back to `next` (a path on this site) with the new cookies. */
async function refreshRedirect(r) {
    const next = safeNext(r.args.next === undefined ? '/' : r.args.next);
    let reply;
    try {
        reply = await r.subrequest('/crm.auth.v1.AuthService/Refresh', { method: 'POST', body: '{}' });
    } catch (e) {
        return jsonError(r, 502, 'unavailable', 'the auth service did not answer; retry later');
    }
    if (reply.status !== 200) return passBack(r, reply);
    if (reply.headersOut['Set-Cookie']) r.headersOut['Set-Cookie'] = reply.headersOut['Set-Cookie'];
    r.return(303, next);
}

/* js_set $crm_next: the original request URI, URL-encoded, for ?next= */
function next(r) {
    return encodeURIComponent(r.variables.request_uri || '/');
}

export default { forward, refreshRedirect, next, safeNext };
