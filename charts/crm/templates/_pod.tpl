{{/*
Pod pieces shared by the services' Deployments and the all-in-one Deployment.
*/}}

{{/* A probe with its port pointed at the workload's probe port. (dict "probe" $p "allInOne" bool "ctx" $) */}}
{{- define "crm.probe" -}}
{{- $p := deepCopy .probe -}}
{{- if $p.grpc -}}
{{- $_ := set $p.grpc "port" (int (ternary .ctx.Values.allInOne.port .ctx.Values.opsPort .allInOne)) -}}
{{- end -}}
{{- if $p.httpGet -}}
{{- $_ := set $p.httpGet "port" (ternary "http" "ops" .allInOne) -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/* preStop: wait until the endpoint is gone from every proxy, then SIGTERM starts the drain. */}}
{{- define "crm.lifecycle" -}}
lifecycle:
  preStop:
    exec:
      command: ["sleep", "{{ .Values.shutdown.preStopSleepSeconds }}"]
{{- end -}}

{{/* Volumes of a CRM process. (dict "component" "auth" "ctx" $) */}}
{{- define "crm.volumes" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $allInOne := eq .component "all" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if not $allInOne }}
- name: tls
  secret:
    secretName: {{ include "crm.tlsSecretName" . }}
    defaultMode: 288  # 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if include "crm.jwtConfigured" $ctx }}
- name: jwt-public
  secret:
    secretName: {{ include "crm.jwtSecretName" $ctx }}
    defaultMode: 288  # 0440
    items:
      - key: {{ $v.jwt.jwksKey }}
        path: {{ $v.jwt.jwksKey }}
{{- if or (eq .component "auth") $allInOne }}
- name: jwt-private
  secret:
    secretName: {{ include "crm.jwtSecretName" $ctx }}
    defaultMode: 288  # 0440
    items:
      - key: {{ $v.jwt.privateKeyKey }}
        path: {{ $v.jwt.privateKeyKey }}
{{- end }}
{{- end }}
{{- /* DATA_DIR (the image's /data): all-in-one keeps its embedded database there; a service
       keeps local spill files there (e.g. e-mail written as .eml files without SMTP). */}}
- name: data
{{- if and $allInOne $v.allInOne.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (include "crm.componentName" (dict "component" "all" "ctx" $ctx)) $v.allInOne.persistence.existingClaim }}
{{- else if $allInOne }}
  emptyDir: {}
{{- else }}
  emptyDir:
    sizeLimit: 256Mi
{{- end }}
{{- end -}}

{{- define "crm.volumeMounts" -}}
{{- $ctx := .ctx -}}
{{- $allInOne := eq .component "all" -}}
- name: tmp
  mountPath: /tmp
{{- if not $allInOne }}
- name: tls
  mountPath: /etc/crm/tls
  readOnly: true
{{- end }}
{{- if include "crm.jwtConfigured" $ctx }}
- name: jwt-public
  mountPath: /etc/crm/jwt
  readOnly: true
{{- if or (eq .component "auth") $allInOne }}
- name: jwt-private
  mountPath: /etc/crm/jwt-private
  readOnly: true
{{- end }}
{{- end }}
- name: data
  mountPath: /data
{{- end -}}

{{/*
checksum/jwt: a hash of the keys the pod reads (the JWKS; auth and the all-in-one also the signing
key), so an upgrade that changes them rolls the pods. Keys in values: their content. An existing
Secret: its data as the cluster has it (lookup); where lookup sees no cluster (helm template,
--dry-run) only the Secret's name is known, and the pods then take a changed JWKS by reloading it.
Call with (dict "ctx" $ "signs" bool).
*/}}
{{- define "crm.jwtChecksum" -}}
{{- $jwt := .ctx.Values.jwt -}}
{{- $content := printf "%s%s" (ternary $jwt.privateKey "" .signs) $jwt.jwks -}}
{{- if $jwt.existingSecret -}}
{{- $secret := lookup "v1" "Secret" (include "crm.namespace" .ctx) $jwt.existingSecret | default (dict) -}}
{{- $data := get $secret "data" | default (dict) -}}
{{- if $data -}}
{{- $content = printf "%s%s" (ternary (get $data $jwt.privateKeyKey) "" .signs) (get $data $jwt.jwksKey) -}}
{{- else -}}
{{- $content = printf "existing Secret %s" $jwt.existingSecret -}}
{{- end -}}
{{- end -}}
{{- $content | sha256sum -}}
{{- end -}}

{{/* Pod annotations: config checksums (roll pods when the keys they read change) and scraping. */}}
{{- define "crm.podAnnotations" -}}
{{- $ctx := .ctx -}}
checksum/jwt: {{ include "crm.jwtChecksum" (dict "ctx" $ctx "signs" (has .component (list "auth" "all"))) }}
{{- if .svc.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ ternary $ctx.Values.allInOne.port $ctx.Values.opsPort (eq .component "all") | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .svc.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Spread constraints with the component's selector filled in. */}}
{{- define "crm.topologySpread" -}}
{{- $out := list -}}
{{- range .svc.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not $c.labelSelector -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (fromYaml (include "crm.selectorLabels" (dict "component" $.component "ctx" $.ctx)))) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- if $out -}}
topologySpreadConstraints:
{{ toYaml $out | indent 2 }}
{{- end -}}
{{- end -}}

{{/* The development data services (data-services.yaml): image reference of {registry, repository, tag, digest}. */}}
{{- define "crm.dataImage" -}}
{{- $ref := ternary .repository (printf "%s/%s" .registry .repository) (empty .registry) -}}
{{- if .digest -}}
{{- printf "%s@%s" $ref .digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* Pod security of the data services: restricted, as the official images' uid 999 with its group. */}}
{{- define "crm.dataPodSecurity" -}}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
fsGroup: 999
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "crm.dataContainerSecurity" -}}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .readOnlyRootFilesystem }}
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* volumeClaimTemplates "data" when persistence is on (called with the service's persistence values). */}}
{{- define "crm.dataVolumeClaim" -}}
{{- if .enabled }}
volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      {{- with .storageClass }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ .size }}
{{- end }}
{{- end -}}

{{/*
A generated secret value (base64) that stays what it was: the Secret's current value when the
cluster has it (lookup on upgrade), else 32 new random characters. (dict "name" "key" "ctx").
*/}}
{{- define "crm.keptSecretValue" -}}
{{- $secret := lookup "v1" "Secret" (include "crm.namespace" .ctx) .name | default (dict) -}}
{{- $data := get $secret "data" | default (dict) -}}
{{- get $data .key | default (randAlphaNum 32 | b64enc) -}}
{{- end -}}
