{{/*
Helpers of the crm chart (bitnami style: names, labels, images, secrets, and the one table of
who talks to whom that the NetworkPolicies, the peer URLs and the env vars are all built from).
*/}}

{{/* Chart name, overridable. */}}
{{- define "crm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: <release>-crm, or the release name when it already contains "crm". */}}
{{- define "crm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "crm.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. Call with (dict "component" "auth" "ctx" $). */}}
{{- define "crm.componentName" -}}
{{- printf "%s-%s" (include "crm.fullname" .ctx | trunc 50 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Standard labels. Call with (dict "component" "auth" "ctx" $); component may be empty. */}}
{{- define "crm.labels" -}}
{{ include "crm.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: crm
helm.sh/chart: {{ include "crm.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels (immutable in a Deployment: never add to them). */}}
{{- define "crm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crm.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "crm.annotations" -}}
{{- with .Values.commonAnnotations }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{/* The project's services and their fixed ports (ARCHITECTURE §1). */}}
{{- define "crm.servicePorts" -}}
auth: 50055
dbservice: 8081
chats: 50095
timers: 50020
admin: 50070
email: 50051
logs: 50150
cache: 50060
records: 50110
webhooks: 50130
{{- end -}}

{{/*
Who calls whom, the one source of the NetworkPolicies and the peer URLs.
  peers: the project's services a component calls (gRPC over mTLS on the callee's port)
  uses:  backing systems it connects to
*/}}
{{- define "crm.flows" -}}
gateway:
  peers: [auth, chats, timers, admin, email, logs, cache, records, webhooks]
  uses: [gateway-otlp]
auth:
  peers: [dbservice, email, logs]
  uses: [redis, otlp]
dbservice:
  peers: [logs]
  uses: [postgresql, redis, rabbitmq, otlp]
chats:
  peers: [dbservice, logs]
  uses: [redis, rabbitmq, otlp]
timers:
  peers: [dbservice, logs]
  uses: [redis, otlp]
admin:
  peers: [dbservice, email, logs]
  uses: [redis, rabbitmq, otlp]
email:
  peers: [dbservice, logs]
  uses: [redis, rabbitmq, smtp, otlp]
logs:
  peers: []
  uses: [redis, loki, otlp]
cache:
  peers: [logs]
  uses: [redis, otlp]
records:
  peers: [dbservice, logs]
  uses: [redis, rabbitmq, otlp]
webhooks:
  peers: [dbservice, logs]
  uses: [redis, rabbitmq, otlp]
all:
  peers: []
  uses: [postgresql, redis, rabbitmq, smtp, loki, otlp]
{{- end -}}

{{/*
TLS_PEER_SERVICES of one service: the certificate names (CN) it takes as a calling service's
identity. tls.serviceIdentities.<service> when set ([] = none), else every component whose flow
calls it (crm.flows above: the gateway and the calling services). The kit's default table
(packages/kit/src/service-identities.ts) is the same graph; charts/test checks both.
*/}}
{{- define "crm.serviceIdentities" -}}
{{- $target := .component -}}
{{- $own := index (default (dict) .ctx.Values.tls.serviceIdentities) $target -}}
{{- if kindIs "slice" $own -}}
{{- ternary "none" (join "," $own) (empty $own) -}}
{{- else -}}
{{- $callers := list -}}
{{- range $caller, $flow := fromYaml (include "crm.flows" .ctx) -}}
{{- if has $target $flow.peers -}}
{{- $callers = append $callers $caller -}}
{{- end -}}
{{- end -}}
{{- join "," (sortAlpha $callers) -}}
{{- end -}}
{{- end -}}

{{/* Settings of one service: serviceDefaults merged with services.<name>. Returns YAML. */}}
{{- define "crm.serviceValues" -}}
{{- $defaults := deepCopy .ctx.Values.serviceDefaults -}}
{{- $own := deepCopy (default (dict) (index .ctx.Values.services .component)) -}}
{{- toYaml (mergeOverwrite $defaults $own) -}}
{{- end -}}

{{/* The one image (with digest when given). */}}
{{- define "crm.image" -}}
{{- $registry := default .Values.image.registry .Values.global.imageRegistry -}}
{{- $repo := .Values.image.repository -}}
{{- $ref := ternary $repo (printf "%s/%s" $registry $repo) (empty $registry) -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "crm.gatewayImage" -}}
{{- $img := .Values.gateway.image -}}
{{- $registry := default $img.registry .Values.global.imageRegistry -}}
{{- $ref := ternary $img.repository (printf "%s/%s" $registry $img.repository) (empty $registry) -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $ref $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref ($img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "crm.imagePullSecrets" -}}
{{- $secrets := concat (default (list) .Values.global.imagePullSecrets) (default (list) .Values.image.pullSecrets) | uniq -}}
{{- if $secrets }}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The name of a data service of the release (data-services.yaml): its Service and Secret names. Call with (dict "name" "postgresql" "ctx" $).
*/}}
{{- define "crm.subchartFullname" -}}
{{- $sub := default (dict) (index .ctx.Values .name) -}}
{{- if $sub.fullnameOverride -}}
{{- $sub.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .name $sub.nameOverride -}}
{{- if contains $name .ctx.Release.Name -}}
{{- .ctx.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .ctx.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- backing systems ----- */}}

{{/* PostgreSQL: host, port, user, database, password secret, sslmode. Returns YAML. */}}
{{- define "crm.postgresql" -}}
{{- $v := .Values -}}
{{- if $v.postgresql.enabled -}}
host: {{ printf "%s.%s.svc.%s" (include "crm.subchartFullname" (dict "name" "postgresql" "ctx" .)) (include "crm.namespace" .) $v.clusterDomain }}
port: 5432
user: {{ $v.postgresql.auth.username }}
database: {{ $v.postgresql.auth.database }}
secretName: {{ default (include "crm.subchartFullname" (dict "name" "postgresql" "ctx" .)) $v.postgresql.auth.existingSecret }}
secretKey: {{ $v.postgresql.auth.secretKeys.userPasswordKey }}
sslmode: disable
inCluster: true
{{- else if $v.externalDatabase.host -}}
host: {{ $v.externalDatabase.host }}
port: {{ $v.externalDatabase.port }}
user: {{ $v.externalDatabase.user }}
database: {{ $v.externalDatabase.database }}
secretName: {{ default (printf "%s-externaldb" (include "crm.fullname" .)) $v.externalDatabase.existingSecret }}
secretKey: {{ $v.externalDatabase.existingSecretPasswordKey }}
sslmode: {{ $v.externalDatabase.sslmode }}
inCluster: false
{{- end -}}
{{- end -}}

{{- define "crm.redis" -}}
{{- $v := .Values -}}
{{- if $v.redis.enabled -}}
scheme: redis
host: {{ printf "%s.%s.svc.%s" (include "crm.subchartFullname" (dict "name" "redis" "ctx" .)) (include "crm.namespace" .) $v.clusterDomain }}
port: 6379
{{- if $v.redis.auth.enabled }}
secretName: {{ default (include "crm.subchartFullname" (dict "name" "redis" "ctx" .)) $v.redis.auth.existingSecret }}
secretKey: {{ default "redis-password" $v.redis.auth.existingSecretPasswordKey }}
{{- end }}
inCluster: true
{{- else if $v.externalRedis.host -}}
scheme: {{ ternary "rediss" "redis" $v.externalRedis.tls }}
host: {{ $v.externalRedis.host }}
port: {{ $v.externalRedis.port }}
{{- if or $v.externalRedis.password $v.externalRedis.existingSecret }}
secretName: {{ default (printf "%s-externalredis" (include "crm.fullname" .)) $v.externalRedis.existingSecret }}
secretKey: {{ $v.externalRedis.existingSecretPasswordKey }}
{{- end }}
db: {{ $v.externalRedis.db }}
inCluster: false
{{- end -}}
{{- end -}}

{{- define "crm.rabbitmq" -}}
{{- $v := .Values -}}
{{- if $v.rabbitmq.enabled -}}
scheme: amqp
host: {{ printf "%s.%s.svc.%s" (include "crm.subchartFullname" (dict "name" "rabbitmq" "ctx" .)) (include "crm.namespace" .) $v.clusterDomain }}
port: 5672
user: {{ $v.rabbitmq.auth.username }}
secretName: {{ default (include "crm.subchartFullname" (dict "name" "rabbitmq" "ctx" .)) $v.rabbitmq.auth.existingPasswordSecret }}
secretKey: {{ default "rabbitmq-password" $v.rabbitmq.auth.existingSecretPasswordKey }}
vhost: ""
inCluster: true
{{- else if $v.externalRabbitmq.host -}}
scheme: {{ ternary "amqps" "amqp" $v.externalRabbitmq.tls }}
host: {{ $v.externalRabbitmq.host }}
port: {{ $v.externalRabbitmq.port }}
user: {{ $v.externalRabbitmq.user }}
secretName: {{ default (printf "%s-externalrabbitmq" (include "crm.fullname" .)) $v.externalRabbitmq.existingSecret }}
secretKey: {{ $v.externalRabbitmq.existingSecretPasswordKey }}
vhost: {{ $v.externalRabbitmq.vhost | trimPrefix "/" | quote }}
inCluster: false
{{- end -}}
{{- end -}}

{{- define "crm.loki" -}}
{{- $v := .Values -}}
{{- if $v.externalLoki.url -}}
url: {{ $v.externalLoki.url }}
port: {{ include "crm.urlPort" $v.externalLoki.url }}
inCluster: false
{{- else if $v.observability.enabled -}}
url: {{ printf "http://%s.%s.svc.%s:3100" (include "crm.componentName" (dict "component" "loki" "ctx" .)) (include "crm.namespace" .) $v.clusterDomain }}
port: 3100
inCluster: true
own: loki
{{- end -}}
{{- end -}}

{{- define "crm.smtp" -}}
{{- $v := .Values.smtp -}}
{{- if $v.host -}}
scheme: {{ ternary "smtps" "smtp" $v.secure }}
host: {{ $v.host }}
port: {{ $v.port }}
user: {{ $v.user }}
{{- if or $v.password $v.existingSecret }}
secretName: {{ default (printf "%s-smtp" (include "crm.fullname" .)) $v.existingSecret }}
secretKey: {{ $v.existingSecretPasswordKey }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "crm.otlp" -}}
{{- if .Values.otel.endpoint -}}
url: {{ .Values.otel.endpoint }}
port: {{ include "crm.urlPort" .Values.otel.endpoint }}
{{- else if .Values.observability.enabled -}}
url: {{ printf "http://%s.%s.svc.%s:4318" (include "crm.componentName" (dict "component" "otel-collector" "ctx" .)) (include "crm.namespace" .) .Values.clusterDomain }}
port: 4318
inCluster: true
own: otel-collector
{{- end -}}
{{- end -}}

{{/*
Where the gateway sends its own spans (ngx_otel_module exports OTLP over gRPC only): endpoint
(host:port) and port, or nothing when gateway.tracing is off or has nowhere to send.
*/}}
{{- define "crm.gatewayOtlp" -}}
{{- $t := .Values.gateway.tracing -}}
{{- if and $t.enabled (eq .Values.mode "microservices") -}}
{{- if $t.endpoint -}}
endpoint: {{ $t.endpoint }}
port: {{ last (splitList ":" $t.endpoint) }}
{{- else if .Values.observability.enabled -}}
endpoint: {{ printf "%s.%s.svc.%s:4317" (include "crm.componentName" (dict "component" "otel-collector" "ctx" .)) (include "crm.namespace" .) .Values.clusterDomain }}
port: 4317
inCluster: true
own: otel-collector
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The TCP port of a URL: its explicit port, else 443 for https, else 80. */}}
{{- define "crm.urlPort" -}}
{{- $u := urlParse . -}}
{{- $hostport := splitList ":" $u.host -}}
{{- if gt (len $hostport) 1 -}}
{{- last $hostport -}}
{{- else if eq $u.scheme "https" -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/* ------------------------------------------------------------------------- TLS ----- */}}

{{/* Secret holding tls.crt, tls.key and ca.crt of one component. */}}
{{- define "crm.tlsSecretName" -}}
{{- $override := index (default (dict) .ctx.Values.tls.existingSecrets) .component -}}
{{- default (printf "%s-tls" (include "crm.componentName" .)) $override -}}
{{- end -}}

{{- define "crm.jwtSecretName" -}}
{{- default (printf "%s-jwt" (include "crm.fullname" .)) .Values.jwt.existingSecret -}}
{{- end -}}

{{/* True when JWT keys come from a Secret (given or created); false = all-in-one generates them. */}}
{{- define "crm.jwtConfigured" -}}
{{- if or .Values.jwt.existingSecret .Values.jwt.privateKey -}}true{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- validation ----- */}}
{{- define "crm.validateValues" -}}
{{- $s := .Values.shutdown -}}
{{- /* the gateway's nginx drains for up to 10 s (worker_shutdown_timeout in the template) */ -}}
{{- $drainSeconds := div (add $s.drainTimeoutMs 999) 1000 -}}
{{- if and (eq .Values.mode "microservices") (lt (int $drainSeconds) 10) -}}
{{- $drainSeconds = 10 -}}
{{- end -}}
{{- $needed := add $s.preStopSleepSeconds $drainSeconds -}}
{{- if le (int $s.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must exceed shutdown.preStopSleepSeconds + the drain time (shutdown.drainTimeoutMs, and at least the gateway's 10 s) = %v s, or the kubelet kills pods mid-drain" $s.terminationGracePeriodSeconds $needed) -}}
{{- end -}}
{{- if eq .Values.mode "microservices" -}}
{{- if not (include "crm.jwtConfigured" .) -}}
{{- fail "jwt: set jwt.existingSecret (keys jwt.privateKeyKey and jwt.jwksKey) or jwt.privateKey + jwt.jwks: every service verifies access tokens with the JWKS and auth signs with the private key" -}}
{{- end -}}
{{- if and .Values.jwt.privateKey (not .Values.jwt.jwks) -}}
{{- fail "jwt.jwks is required with jwt.privateKey (the public keys, as a JWKS json)" -}}
{{- end -}}
{{- if not (include "crm.postgresql" .) -}}
{{- fail "database: enable postgresql (postgresql.enabled=true) or set externalDatabase.host" -}}
{{- end -}}
{{- if not (include "crm.redis" .) -}}
{{- fail "redis: enable redis (redis.enabled=true) or set externalRedis.host" -}}
{{- end -}}
{{- if not (include "crm.rabbitmq" .) -}}
{{- fail "rabbitmq: enable rabbitmq (rabbitmq.enabled=true) or set externalRabbitmq.host" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.postgresql.enabled .Values.externalDatabase.host -}}
{{- fail "database: postgresql.enabled=true and externalDatabase.host are both set; choose one" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.externalRedis.host -}}
{{- fail "redis: redis.enabled=true and externalRedis.host are both set; choose one" -}}
{{- end -}}
{{- if and .Values.rabbitmq.enabled .Values.externalRabbitmq.host -}}
{{- fail "rabbitmq: rabbitmq.enabled=true and externalRabbitmq.host are both set; choose one" -}}
{{- end -}}
{{- end -}}

{{/* ServiceAccount of a component. (dict "component" "auth" "svc" $svc "ctx" $) */}}
{{- define "crm.serviceAccountName" -}}
{{- if .svc.serviceAccount.create -}}
{{- include "crm.componentName" (dict "component" .component "ctx" .ctx) -}}
{{- else -}}
{{- default "default" .svc.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Components deployed in the current mode (besides the gateway), one per line. */}}
{{- define "crm.components" -}}
{{- if eq .Values.mode "allInOne" -}}
all
{{- else -}}
{{- keys (fromYaml (include "crm.servicePorts" .)) | sortAlpha | join "\n" -}}
{{- end -}}
{{- end -}}
