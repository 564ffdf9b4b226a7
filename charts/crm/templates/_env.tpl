{{/*
Environment of one workload, exactly the variables its config reads (see the chart README).
Call with (dict "component" "auth" "ctx" $); component "all" is the all-in-one process.
Passwords come from Secrets into *_PASSWORD variables that the URL next to them expands with
$(VAR) (Kubernetes dependent environment variables), so no password is written into a manifest.
*/}}
{{- define "crm.env" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $c := .component -}}
{{- $ports := fromYaml (include "crm.servicePorts" $ctx) -}}
{{- $flow := index (fromYaml (include "crm.flows" $ctx)) $c -}}
{{- $svc := fromYaml (include "crm.serviceValues" (dict "component" $c "ctx" $ctx)) -}}
{{- $allInOne := eq $c "all" -}}
- name: PORT
  value: {{ ternary $v.allInOne.port (index $ports $c) $allInOne | quote }}
- name: HOST
  value: "0.0.0.0"
{{- if not $allInOne }}
- name: OPS_PORT
  value: {{ $v.opsPort | quote }}
{{- end }}
- name: LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: SHUTDOWN_TIMEOUT_MS
  value: {{ $v.shutdown.drainTimeoutMs | quote }}
- name: RPC_FAST_PATH
  value: {{ $v.rpcFastPath | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ ternary "crm" $c $allInOne | quote }}
{{- if and (not $allInOne) (ne $c "logs") (include "crm.loki" $ctx | fromYaml).url }}
- name: LOGS_REPORT_LEVEL
  value: {{ $v.lokiLogLevel | quote }}
{{- end }}
{{- with (include "crm.otlp" $ctx | fromYaml) }}
{{- if .url }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .url | quote }}
{{- end }}
{{- end }}
- name: JWT_ISSUER
  value: {{ $v.jwt.issuer | quote }}
- name: JWT_AUDIENCE
  value: {{ $v.jwt.audience | quote }}
{{- if include "crm.jwtConfigured" $ctx }}
- name: JWT_PUBLIC_KEYS_FILE
  value: /etc/crm/jwt/{{ $v.jwt.jwksKey }}
{{- if or (eq $c "auth") $allInOne }}
- name: JWT_PRIVATE_KEY_FILE
  value: /etc/crm/jwt-private/{{ $v.jwt.privateKeyKey }}
{{- if $v.jwt.keyId }}
- name: JWT_KEY_ID
  value: {{ $v.jwt.keyId | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if $allInOne }}
- name: DATA_DIR
  value: /data
{{- else }}
- name: TLS_CERT_FILE
  value: /etc/crm/tls/tls.crt
- name: TLS_KEY_FILE
  value: /etc/crm/tls/tls.key
- name: TLS_CA_FILE
  value: /etc/crm/tls/ca.crt
- name: TLS_CLIENT_AUTH
  value: {{ $v.tls.clientAuth | quote }}
- name: TLS_PEER_SERVICES
  value: {{ include "crm.serviceIdentities" (dict "component" $c "ctx" $ctx) | quote }}
- name: CREDENTIAL_RELOAD_INTERVAL_MS
  value: {{ mul $v.tls.reloadIntervalSeconds 1000 | quote }}
{{- range $peer := $flow.peers }}
- name: {{ upper $peer }}_URL
  value: {{ printf "https://%s:%v" (include "crm.componentName" (dict "component" $peer "ctx" $ctx)) (index $ports $peer) | quote }}
{{- end }}
{{- end }}
{{- if has "postgresql" $flow.uses }}
{{- with (include "crm.postgresql" $ctx | fromYaml) }}
{{- if .host }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
- name: DATABASE_URL
  value: {{ printf "postgresql://%s:$(DATABASE_PASSWORD)@%s:%v/%s?sslmode=%s" .user .host .port .database .sslmode | quote }}
{{- end }}
{{- end }}
- name: DB_POOL_MAX
  value: {{ $v.services.dbservice.dbPoolMax | quote }}
{{- end }}
{{- if has "redis" $flow.uses }}
{{- with (include "crm.redis" $ctx | fromYaml) }}
{{- if .host }}
{{- if .secretName }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
- name: REDIS_URL
  value: {{ printf "%s://:$(REDIS_PASSWORD)@%s:%v/%v" .scheme .host .port (default 0 .db) | quote }}
{{- else }}
- name: REDIS_URL
  value: {{ printf "%s://%s:%v/%v" .scheme .host .port (default 0 .db) | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if has "rabbitmq" $flow.uses }}
{{- with (include "crm.rabbitmq" $ctx | fromYaml) }}
{{- if .host }}
- name: AMQP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
- name: AMQP_URL
  value: {{ printf "%s://%s:$(AMQP_PASSWORD)@%s:%v%s" .scheme .user .host .port (ternary "" (printf "/%s" (.vhost | urlquery)) (empty .vhost)) | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if has "smtp" $flow.uses }}
{{- with (include "crm.smtp" $ctx | fromYaml) }}
{{- if .host }}
{{- if .secretName }}
- name: SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
- name: SMTP_URL
  value: {{ printf "%s://%s:$(SMTP_PASSWORD)@%s:%v" .scheme (.user | urlquery) .host .port | quote }}
{{- else }}
- name: SMTP_URL
  value: {{ printf "%s://%s:%v" .scheme .host .port | quote }}
{{- end }}
{{- end }}
{{- end }}
- name: EMAIL_FROM
  value: {{ $v.smtp.from | quote }}
- name: EMAIL_WORKERS
  value: {{ $v.services.email.workers | quote }}
{{- end }}
{{- if or (eq $c "auth") (eq $c "admin") (eq $c "email") $allInOne }}
- name: PUBLIC_URL
  value: {{ required "publicUrl is required (the https URL users reach the gateway at; it goes into e-mailed links)" $v.publicUrl | quote }}
{{- end }}
{{- if has "loki" $flow.uses }}
{{- with (include "crm.loki" $ctx | fromYaml) }}
{{- if .url }}
- name: LOKI_URL
  value: {{ .url | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with $svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
