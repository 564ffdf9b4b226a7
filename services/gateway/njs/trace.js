/*
 * W3C Trace Context at the front door (njs 0.7.9+), https://www.w3.org/TR/trace-context/.
 *
 * Without a tracing module: a valid `traceparent` from the client goes to the service unchanged
 * (with its `tracestate`); a missing or malformed one is replaced by a new trace whose trace id is
 * $request_id (the id in the access log and in the services' X-Request-Id, so one id finds both)
 * and whose parent id is random. The client's `tracestate` travels only with the client's own
 * traceparent.
 *
 * With ngx_otel_module loaded and `otel_trace_context extract` (the Helm chart's gateway.tracing,
 * http.d/): the module has already read the client's traceparent and made the gateway's own span,
 * exported to the collector. The service gets that span as its parent ($otel_trace_id,
 * $otel_span_id), so the gateway and the services are one trace; the client's `tracestate` goes
 * along when the module kept the client's trace.
 */

// version-traceid-parentid-flags; versions after 00 may append "-..." fields
const FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZEROS = /^0+$/;

/** The client's traceparent when it is valid, else ''. */
function clientTraceparent(r) {
    const value = r.headersIn.traceparent;
    const m = value === undefined ? null : FORMAT.exec(value);
    if (m === null) return '';
    const version = m[1];
    if (version === 'ff' || (version === '00' && m[5] !== undefined)) return '';
    if (ZEROS.test(m[2]) || ZEROS.test(m[3])) return '';
    return value;
}

/** The span of ngx_otel_module for this request: {trace, span}, or null without the module. */
function moduleSpan(r) {
    const span = r.variables.otel_span_id; // undefined: no such variable (the module is not loaded)
    const trace = r.variables.otel_trace_id;
    return span && trace ? { trace, span } : null;
}

function randomHex(bytes) {
    const b = new Uint8Array(bytes);
    crypto.getRandomValues(b);
    b[bytes - 1] |= 1; // never all zeros (invalid as a parent id)
    let s = '';
    for (let i = 0; i < bytes; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
    return s;
}

/** js_set $crm_traceparent: what the service gets as `traceparent`. */
function traceparent(r) {
    const own = moduleSpan(r);
    if (own) return '00-' + own.trace + '-' + own.span + '-01';
    return clientTraceparent(r) || '00-' + r.variables.request_id + '-' + randomHex(8) + '-01';
}

/** js_set $crm_tracestate: the client's `tracestate`, only beside its own trace. */
function tracestate(r) {
    const client = clientTraceparent(r);
    if (!client) return '';
    const own = moduleSpan(r);
    if (own && client.substring(3, 35) !== own.trace) return '';
    return r.headersIn.tracestate || '';
}

export default { traceparent, tracestate };
