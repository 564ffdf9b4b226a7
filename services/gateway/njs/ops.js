/*
 * Operators at the gateway (grpcurl, buf curl): server reflection is routed only for a caller
 * whose client certificate, verified against CRM_GW_CLIENT_CA, has a subject CN listed in
 * CRM_GW_OPS_CLIENTS (space- or comma-separated; empty, the default: nobody).
 */

/** The CN of an RFC 2253 subject ("CN=ops,O=Acme"; "\," is an escaped comma), or ''. */
function commonName(dn) {
    const m = /(?:^|,)CN=((?:\\.|[^,\\])*)/.exec(dn);
    return m ? m[1].replace(/\\(.)/g, '$1') : '';
}

/** js_set $crm_ops_client: '1' when the verified client certificate names an operator, else ''. */
function client(r) {
    if (r.variables.ssl_client_verify !== 'SUCCESS') return '';
    const names = (r.variables.crm_ops_clients || '').split(/[\s,]+/).filter(function (n) { return n !== ''; });
    const cn = commonName(r.variables.ssl_client_s_dn || '');
    return cn !== '' && names.indexOf(cn) >= 0 ? '1' : '';
}

export default { client };
