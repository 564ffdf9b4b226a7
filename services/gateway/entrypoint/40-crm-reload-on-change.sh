#!/bin/sh
# Renewed certificates without a restart. nginx reads its certificates at start and on reload only,
# so when cert-manager renews them (the kubelet then swaps the mounted Secret's files) this loop
# sends the master SIGHUP (nginx -s reload): it re-reads the configuration and the files, new
# connections (clients' and upstream ones) use the new certificates, the old workers finish their
# open requests (worker_shutdown_timeout, 10 s). A set that does not load (a key without its
# certificate yet) leaves nginx on the old one, and the next change is tried again.
#
# The official nginx image's entrypoint runs /docker-entrypoint.d/*.sh before nginx starts: the
# chart mounts this file there, and it leaves the loop running in the background.
#   CRM_GW_RELOAD_FILES     files compared every interval (by content; the chart's certificate files)
#   CRM_GW_RELOAD_INTERVAL  seconds between two comparisons (default 10; 0 = no loop)
#   CRM_GW_RUNTIME_DIR      where nginx writes nginx.pid
set -u
files=${CRM_GW_RELOAD_FILES:-/etc/crm/tls/tls.crt /etc/crm/tls/tls.key /etc/crm/tls/ca.crt /etc/crm/public-tls/tls.crt /etc/crm/public-tls/tls.key /etc/crm/client-ca/ca.crt}
interval=${CRM_GW_RELOAD_INTERVAL:-10}
pidfile=${CRM_GW_RUNTIME_DIR:-/run/crm-gw}/nginx.pid

if [ "${1:-}" != "--loop" ]; then
  [ "$interval" = 0 ] && exit 0
  "$0" --loop </dev/null &
  exit 0
fi

sum() {
  # shellcheck disable=SC2086 # the list is split on spaces on purpose
  cat $files 2>/dev/null | cksum
}

last=$(sum)
while sleep "$interval"; do
  now=$(sum)
  [ "$now" = "$last" ] && continue
  if pid=$(cat "$pidfile" 2>/dev/null) && [ -n "$pid" ] && kill -HUP "$pid" 2>/dev/null; then
    last=$now
    echo "crm-gateway: a certificate file changed: nginx reloads (new connections use the new certificate)" >&2
  else
    echo "crm-gateway: a certificate file changed, but nginx ($pidfile) is not running yet: trying again" >&2
  fi
done
