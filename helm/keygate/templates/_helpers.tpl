{{/* Names ------------------------------------------------------------------------------- */}}
{{- define "keygate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keygate.fullname" -}}
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

{{- define "keygate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keygate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "keygate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "keygate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "keygate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "keygate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "keygate.redisSecretName" -}}
{{- if .Values.redis.existingSecret.name -}}
{{- .Values.redis.existingSecret.name -}}
{{- else -}}
{{- printf "%s-redis" (include "keygate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "keygate.redisSecretKey" -}}
{{- if .Values.redis.existingSecret.name -}}{{ .Values.redis.existingSecret.key }}{{- else -}}redis-url{{- end -}}
{{- end -}}

{{/* Checks that must stop an install with a clear message ------------------------------- */}}
{{- define "keygate.validate" -}}
{{- if eq .Values.store.type "file" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled -}}
{{- fail (printf "store.type=file keeps keys in one pod's file and allows one keygate only: set replicaCount: 1 and autoscaling.enabled: false (got replicaCount: %d), or use store.type=redis to share keys between replicas" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if .Values.bootstrap.enabled -}}
{{- fail "bootstrap.enabled needs store.type=redis: the bootstrap Job cannot open the pod's file store (it is locked by the running keygate); create the first admin key with kubectl exec instead (see the README)" -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.store.type "redis" -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret.name .Values.store.redis.sentinel .Values.store.redis.cluster) -}}
{{- fail "store.type=redis needs one of: redis.url, redis.existingSecret.name, store.redis.sentinel, store.redis.cluster" -}}
{{- end -}}
{{- if and .Values.redis.url .Values.redis.existingSecret.name -}}
{{- fail "set either redis.url or redis.existingSecret.name, not both" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.upstreamCredential.existingSecret.name (not .Values.upstreamCredential.existingSecret.key) -}}
{{- fail "upstreamCredential.existingSecret.key must name the Secret's key that holds the upstream credential" -}}
{{- end -}}
{{- include "keygate.validateMode" . -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.shutdown.drainTimeoutSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above shutdown.drainTimeoutSeconds (%d), or Kubernetes kills keygate before in-flight requests finish" (int .Values.terminationGracePeriodSeconds) (int .Values.shutdown.drainTimeoutSeconds)) -}}
{{- end -}}
{{- end -}}

{{/* keygate's mode (config.mode): proxy | authz | both. Missing means keygate's default. */}}
{{- define "keygate.mode" -}}
{{- .Values.config.mode | default "proxy" -}}
{{- end -}}

{{/* config.upstream.url, or "" when config.upstream is unset or null. */}}
{{- define "keygate.upstreamUrl" -}}
{{- with .Values.config.upstream -}}{{- .url | default "" -}}{{- end -}}
{{- end -}}

{{/* Checks for config.mode and the authz values (see keygate.validate). */}}
{{- define "keygate.validateMode" -}}
{{- $mode := include "keygate.mode" . -}}
{{- if not (has $mode (list "proxy" "authz" "both")) -}}
{{- fail (printf "config.mode must be proxy, authz or both (got %q)" $mode) -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if eq (toString .name) "KEYGATE_MODE" -}}
{{- fail "set keygate's mode with config.mode, not KEYGATE_MODE in extraEnv: the chart shapes the NetworkPolicy, the ingress-nginx annotations and NOTES from config.mode, and an environment override would run keygate in another mode than they assume" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $mode "authz") (eq .Values.mode "sidecar") -}}
{{- fail "config.mode=authz needs mode=gateway: in authz mode keygate forwards nothing and answers an ingress controller's auth subrequests from its own Deployment and Service, so it has no place in the Aggregator's pod (mode=sidecar). Set mode: gateway, or config.mode: proxy for a sidecar" -}}
{{- end -}}
{{- if and (ne $mode "authz") (not (include "keygate.upstreamUrl" .)) -}}
{{- fail (printf "config.upstream.url is required in config.mode=%s (keygate forwards to it); only config.mode=authz runs without an upstream" $mode) -}}
{{- end -}}
{{- if and (eq $mode "authz") .Values.upstreamCredential.existingSecret.name -}}
{{- fail "upstreamCredential is keygate's credential for its upstream, and config.mode=authz calls no upstream (the ingress controller does): remove upstreamCredential.existingSecret.name, or use config.mode=both" -}}
{{- end -}}
{{- with .Values.authz.ingressNginx -}}
{{- if .enabled -}}
{{- if eq $mode "proxy" -}}
{{- fail "authz.ingressNginx needs config.mode=authz or both: in proxy mode keygate does not answer /_keygate/authz, so ingress-nginx would refuse every request" -}}
{{- end -}}
{{- if ne $.Values.mode "gateway" -}}
{{- fail "authz.ingressNginx needs mode=gateway: its auth-url is keygate's own Service, which mode=sidecar does not render" -}}
{{- end -}}
{{- if has (toString .aggregator.port) (list "9007" "9008") -}}
{{- fail (printf "authz.ingressNginx.aggregator.port %v: 9007 and 9008 are Kubecost's admin APIs, unauthenticated with SSO on; point the Ingress at the Aggregator's API port (9004)" .aggregator.port) -}}
{{- end -}}
{{- range $name, $_ := .extraAnnotations -}}
{{- if has (lower $name) (list "nginx.ingress.kubernetes.io/auth-url" "nginx.ingress.kubernetes.io/auth-response-headers") -}}
{{- fail (printf "authz.ingressNginx.extraAnnotations may not set %s: the chart sets it to keygate's answer, and another value would let requests past keygate or let the caller's key reach the Aggregator" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The two ingress-nginx annotations that put keygate (config.mode authz/both) in front of an
Ingress. auth-response-headers lists the identity headers keygate answers with, then
Authorization and X-API-KEY, which keygate's answer never carries: ingress-nginx turns each
listed name into `proxy_set_header Name $authHeaderN`, and an empty value removes the header,
so the caller's key never reaches the Aggregator without a snippet annotation (those are off by
default in recent ingress-nginx). A client-sent identity header is replaced the same way.
*/}}
{{- define "keygate.authzAnnotations" -}}
{{- $h := .Values.config.identityHeaders | default dict -}}
{{- $headers := list (default "X-Keygate-Account" $h.account) (default "X-Keygate-Key-Id" $h.keyId) (default "X-Keygate-Role" $h.role) "Authorization" "X-API-KEY" -}}
nginx.ingress.kubernetes.io/auth-url: {{ printf "http://%s.%s.svc.cluster.local:%d/_keygate/authz" (include "keygate.fullname" .) .Release.Namespace (int .Values.service.port) | quote }}
nginx.ingress.kubernetes.io/auth-response-headers: {{ join "," $headers | quote }}
{{- end -}}

{{/* keygate's configuration, rendered from values (the ConfigMap's keygate.yaml) --------- */}}
{{- define "keygate.config" -}}
{{- $store := dict "type" .Values.store.type -}}
{{- if eq .Values.store.type "redis" -}}
{{- $redis := dict "keyPrefix" .Values.store.redis.keyPrefix "commandTimeout" .Values.store.redis.commandTimeout -}}
{{- with .Values.store.redis.sentinel }}{{ $_ := set $redis "sentinel" . }}{{ end -}}
{{- with .Values.store.redis.cluster }}{{ $_ := set $redis "cluster" . }}{{ end -}}
{{- $_ := set $store "redis" $redis -}}
{{- else -}}
{{- $_ := set $store "file" (dict "path" "/data/keygate.json") -}}
{{- end -}}
{{- /* 0.0.0.0 in the pod: the kubelet's probes and Prometheus connect to the pod IP. */ -}}
{{- $ops := dict "host" "0.0.0.0" "port" (int .Values.ports.ops) -}}
{{- if .Values.metrics.auth.existingSecret.name -}}
{{- $_ := set $ops "metricsTokenFile" "/etc/keygate-metrics/token" -}}
{{- end -}}
{{- $mode := include "keygate.mode" . -}}
{{- /* The chart owns the address and the drain (ports, shutdown); config.listen adds the limits. */ -}}
{{- $listen := merge (dict "host" "0.0.0.0" "port" (int .Values.ports.proxy) "drainTimeout" (printf "%ds" (int .Values.shutdown.drainTimeoutSeconds))) (deepCopy (.Values.config.listen | default dict)) -}}
{{- $config := dict
  "listen" $listen
  "ops" $ops
  "store" $store
  "keys" .Values.config.keys
  "roles" .Values.config.roles
  "routes" .Values.config.routes
  "identityHeaders" .Values.config.identityHeaders
  "trustedProxies" .Values.config.trustedProxies
  "metrics" (.Values.config.metrics | default dict)
  "log" .Values.config.log
-}}
{{- /* authz forwards nothing: no upstream, whatever config.upstream holds (values.yaml has a default). */ -}}
{{- if ne $mode "authz" -}}
{{- $upstream := deepCopy .Values.config.upstream -}}
{{- with .Values.upstreamCredential -}}
{{- if .existingSecret.name -}}
{{- /* The file from the mounted Secret (keygate.volumes): a path, never the value. */ -}}
{{- $_ := set $upstream "credential" (dict "header" .header "file" "/etc/keygate-upstream/credential") -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "upstream" $upstream -}}
{{- end -}}
{{- /* mode and authz only when not proxy: a proxy-mode ConfigMap stays as it was (and as a
keygate from before authz mode, which refuses unknown keys, accepts it). */ -}}
{{- if ne $mode "proxy" -}}
{{- $_ := set $config "mode" $mode -}}
{{- $_ := set $config "authz" (.Values.config.authz | default dict) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Image, environment, limits and mounts: shared by the server and the CLI containers. */}}
{{- define "keygate.containerBase" -}}
image: {{ include "keygate.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
env:
  - name: KEYGATE_CONFIG
    value: /etc/keygate/keygate.yaml
  {{- if and (eq .Values.store.type "redis") (or .Values.redis.url .Values.redis.existingSecret.name) }}
  - name: KEYGATE_REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "keygate.redisSecretName" . }}
        key: {{ include "keygate.redisSecretKey" . }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: keygate-config
    mountPath: /etc/keygate
    readOnly: true
  - name: keygate-data
    mountPath: /data
  - name: keygate-tmp
    mountPath: /tmp
  {{- if .Values.metrics.auth.existingSecret.name }}
  - name: keygate-metrics-token
    mountPath: /etc/keygate-metrics
    readOnly: true
  {{- end }}
  {{- if .Values.upstreamCredential.existingSecret.name }}
  # A directory mount, not subPath: the kubelet swaps ..data when the Secret changes, and
  # keygate re-reads the file (subPath mounts never see an update).
  - name: keygate-upstream-credential
    mountPath: /etc/keygate-upstream
    readOnly: true
  {{- end }}
{{- end -}}

{{/*
The keygate server container. Used by this chart's Deployment and, in sidecar mode, by other
charts that embed this one:
  containers:
    - {{ include "keygate.container" .Subcharts.keygate | nindent 6 }}
*/}}
{{- define "keygate.container" -}}
name: keygate
args: ["serve"]
{{ include "keygate.containerBase" . }}
ports:
  - name: http
    containerPort: {{ .Values.ports.proxy }}
    protocol: TCP
  - name: ops
    containerPort: {{ .Values.ports.ops }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: ops
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: ops
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}

{{/* The volumes the container needs; add them to the pod beside the container. */}}
{{- define "keygate.volumes" -}}
- name: keygate-config
  {{- if .Values.accounts }}
  # keygate.yaml and, for the apply-accounts initContainer, accounts/accounts.yaml: one volume,
  # because a second mount inside a read-only ConfigMap mount cannot create its mount point.
  projected:
    sources:
      - configMap:
          name: {{ include "keygate.fullname" . }}
      - configMap:
          name: {{ include "keygate.fullname" . }}-accounts
          items:
            - key: accounts.yaml
              path: accounts/accounts.yaml
  {{- else }}
  configMap:
    name: {{ include "keygate.fullname" . }}
  {{- end }}
- name: keygate-data
  {{- if and (eq .Values.store.type "file") .Values.store.file.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-data" (include "keygate.fullname" .)) .Values.store.file.persistence.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: keygate-tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- with .Values.metrics.auth.existingSecret }}
{{- if .name }}
- name: keygate-metrics-token
  secret:
    secretName: {{ .name }}
    items:
      - key: {{ .key }}
        path: token
    defaultMode: 288 # 0440: readable by the pod's fsGroup, not by others
{{- end }}
{{- end }}
{{- with .Values.upstreamCredential.existingSecret }}
{{- if .name }}
- name: keygate-upstream-credential
  secret:
    secretName: {{ .name }}
    items:
      - key: {{ .key }}
        path: credential
    defaultMode: 288 # 0440: readable by the pod's fsGroup, not by others
{{- end }}
{{- end }}
{{- end -}}

{{/*
The alert groups, shared by the PrometheusRule and (rendered with job=keygate) by
deploy/prometheus/keygate-rules.yaml. Args: job (scrape job label), t (thresholds), runbook.
*/}}
{{- define "keygate.prometheusRuleGroups" -}}
groups:
  - name: keygate
    rules:
      - alert: KeygateDown
        expr: up{job="{{ .job }}"} == 0 or absent(up{job="{{ .job }}"})
        for: {{ .t.downFor }}
        labels:
          severity: critical
        annotations:
          summary: keygate is down (or not scraped) on {{`{{ $labels.instance }}`}}
          description: Prometheus could not scrape keygate's /metrics (job {{ .job }}) for {{ .t.downFor }}, or has no keygate target at all; callers behind it may get no answer.
          runbook_url: {{ .runbook }}#keygatedown
      - alert: KeygateKeyStoreDown
        expr: max by (instance) (keygate_store_up{job="{{ .job }}"}) == 0
        for: {{ .t.storeDownFor }}
        labels:
          severity: critical
        annotations:
          summary: keygate on {{`{{ $labels.instance }}`}} cannot reach its key store
          description: keygate_store_up has been 0 for {{ .t.storeDownFor }}; keys not in the verified-key cache are refused with 503 store_unavailable.
          runbook_url: {{ .runbook }}#keygatekeystoredown
      - alert: KeygateHigh5xxRatio
        expr: (sum by (job) (rate(keygate_requests_total{job="{{ .job }}",code=~"5.."}[5m])) / sum by (job) (rate(keygate_requests_total{job="{{ .job }}"}[5m]))) > {{ .t.errorRatio5xx }}
        for: {{ .t.errorRatioFor }}
        labels:
          severity: warning
        annotations:
          summary: more than {{ mulf .t.errorRatio5xx 100 }}% of keygate's answers are 5xx
          description: '{{`{{ $value | humanizePercentage }}`}} of requests were answered 5xx over the last 5 minutes (keygate, its store or the upstream).'
          runbook_url: {{ .runbook }}#keygatehigh5xxratio
      - alert: KeygateVerifyShedding
        expr: sum by (job) (rate(keygate_auth_decisions_total{job="{{ .job }}",result="verify_overloaded"}[5m])) > 0
        for: {{ .t.sheddingFor }}
        labels:
          severity: warning
        annotations:
          summary: keygate is shedding key verifications (argon2 queue full)
          description: '{{`{{ $value | humanize }}`}} requests per second are refused with 503 verify_overloaded: the argon2 verify queue (keys.verifyQueue) is full.'
          runbook_url: {{ .runbook }}#keygateverifyshedding
      - alert: KeygateUpstreamErrors
        expr: (sum by (job) (rate(keygate_upstream_errors_total{job="{{ .job }}"}[5m])) / sum by (job) (rate(keygate_requests_total{job="{{ .job }}"}[5m]))) > {{ .t.upstreamErrorRatio }}
        for: {{ .t.upstreamErrorsFor }}
        labels:
          severity: warning
        annotations:
          summary: keygate's upstream fails more than {{ mulf .t.upstreamErrorRatio 100 }}% of requests
          description: '{{`{{ $value | humanizePercentage }}`}} of requests got no answer from the upstream over 5 minutes (see keygate_upstream_errors_total by kind).'
          runbook_url: {{ .runbook }}#keygateupstreamerrors
      - alert: KeygateKeysExpiringInUse
        expr: max by (account) (keygate_keys_expiring{job="{{ .job }}",within="7d",in_use="true"}) > 0
        labels:
          severity: warning
        annotations:
          summary: account {{`{{ $labels.account }}`}} has {{`{{ $value }}`}} key(s) in use that expire within 7 days
          description: 'A key of account {{`{{ $labels.account }}`}} was used recently and expires within 7 days; the job using it breaks then. Find it with `keygate keys list --expiring 7d`.'
          runbook_url: {{ .runbook }}#keygatekeysexpiringinuse
      - alert: KeygateConfigReloadFailing
        expr: min by (instance) (keygate_config_last_reload_successful{job="{{ .job }}"}) == 0
        for: {{ .t.reloadFailingFor }}
        labels:
          severity: warning
        annotations:
          summary: keygate on {{`{{ $labels.instance }}`}} refuses its config file and keeps serving the previous one
          description: 'The last reload (SIGHUP or a change of the mounted file) failed validation {{ .t.reloadFailingFor }} ago or more; keygate still serves the config it had, so the file on disk is not what runs. The log line "config reload refused" names the path and the problem.'
          runbook_url: {{ .runbook }}#keygateconfigreloadfailing
{{- end -}}

{{/* Accounts in git (DESIGN §14) ----------------------------------------------------------- */}}
{{/* The accounts file the initContainer applies: `accounts:` and the values' list. */}}
{{- define "keygate.accountsYaml" -}}
{{- toYaml (dict "accounts" .Values.accounts) -}}
{{- end -}}

{{/*
Refuses, naming the path and never the value, any string under accounts that looks like a
plaintext key: one that starts with "<prefix>_" (or "kg_") or holds "<prefix>_<12 base62>_".
Values end up in the release Secret and the ConfigMap, readable by anyone who can read those:
only argon2id hashes may go there. Args: value, path, prefixes.
*/}}
{{- define "keygate.noPlaintextKey" -}}
{{- $v := .value -}}
{{- if kindIs "map" $v -}}
{{- range $k, $x := $v -}}
{{- include "keygate.noPlaintextKey" (dict "value" $x "path" (printf "%s.%s" $.path $k) "prefixes" $.prefixes) -}}
{{- end -}}
{{- else if kindIs "slice" $v -}}
{{- range $i, $x := $v -}}
{{- include "keygate.noPlaintextKey" (dict "value" $x "path" (printf "%s[%d]" $.path $i) "prefixes" $.prefixes) -}}
{{- end -}}
{{- else if kindIs "string" $v -}}
{{- range $p := $.prefixes -}}
{{- if or (hasPrefix (printf "%s_" $p) $v) (regexMatch (printf "%s_[0-9A-Za-z]{12}_" $p) $v) -}}
{{- fail (printf "%s looks like a plaintext API key (%s_…): never put a key in values, they are stored in the release and the ConfigMap. Put its argon2id hash under keys[].hash (the record `keygate keys mint ACCOUNT --offline` prints on stderr) and hand the key itself to its user" $.path $p) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "keygate.validateAccounts" -}}
{{- $prefixes := uniq (list (.Values.config.keys.prefix | default "kg") "kg") -}}
{{- if not (kindIs "slice" .Values.accounts) -}}
{{- fail "accounts must be a list of accounts (see the README, \"Accounts in git\")" -}}
{{- end -}}
{{- if and .Values.accountsPrune (not .Values.accounts) -}}
{{- fail "accountsPrune: true with no accounts would apply nothing (the chart renders no apply for an empty list), while it reads as \"remove every account\": list the accounts to keep, or set accountsPrune: false" -}}
{{- end -}}
{{- $names := list -}}
{{- range $i, $a := .Values.accounts -}}
{{- $path := printf "accounts[%d]" $i -}}
{{- if not (kindIs "map" $a) -}}
{{- fail (printf "%s must be an account (name, role, keys…)" $path) -}}
{{- end -}}
{{- include "keygate.noPlaintextKey" (dict "value" $a "path" $path "prefixes" $prefixes) -}}
{{- $names = append $names (toString $a.name) -}}
{{- if not (hasKey ($.Values.config.roles | default dict) (toString $a.role)) -}}
{{- fail (printf "%s.role %q is not a role in config.roles (%s)" $path (toString $a.role) (join ", " (keys ($.Values.config.roles | default dict) | sortAlpha))) -}}
{{- end -}}
{{- range $j, $k := ($a.keys | default list) -}}
{{- $kpath := printf "%s.keys[%d]" $path $j -}}
{{- if not (kindIs "map" $k) -}}
{{- fail (printf "%s must be a key record (id, hash, …)" $kpath) -}}
{{- end -}}
{{- if hasKey $k "key" -}}
{{- fail (printf "%s has a `key:` field: only the key's argon2id hash goes in values (a key there is stored in the release and the ConfigMap in plaintext). Use the record `keygate keys mint ACCOUNT --offline` prints on stderr: id and hash" $kpath) -}}
{{- end -}}
{{- if not (and (kindIs "string" $k.hash) (hasPrefix "$argon2id$" (toString $k.hash))) -}}
{{- fail (printf "%s.hash must be an argon2id hash starting with $argon2id$ (from `keygate keys mint ACCOUNT --offline`)" $kpath) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.accountsPrune .Values.bootstrap.enabled (not (has .Values.bootstrap.account $names)) -}}
{{- fail (printf "accountsPrune: true would remove the bootstrap account %q (bootstrap.enabled creates it outside accounts), and its key with it, at the next pod start: add it to accounts, or set accountsPrune: false or bootstrap.enabled: false" .Values.bootstrap.account) -}}
{{- end -}}
{{- end -}}

{{/*
The initContainer that applies the accounts before keygate starts: keygate's own CLI with the
server's config, store and environment (keygate.containerBase), on the file the
keygate-config volume projects from the accounts ConfigMap. It runs in every pod start, and
`keygate apply` is idempotent, so a rolled pod (checksum/accounts) re-applies a changed list.
Embedding charts (mode sidecar) add it to the Aggregator pod's initContainers:
  initContainers:
    - {{ include "keygate.applyAccountsContainer" .Subcharts.keygate | nindent 6 }}
*/}}
{{- define "keygate.applyAccountsContainer" -}}
name: apply-accounts
args: ["apply", "-f", "/etc/keygate/accounts/accounts.yaml"{{ if .Values.accountsPrune }}, "--prune"{{ end }}]
{{ include "keygate.containerBase" . }}
{{- end -}}

{{/*
keygate.config without what a running keygate reloads (src/config/reload-plan.ts,
RELOADABLE_PATHS): with configReload.inPlace, the pod template's checksum covers only this, so
a change here rolls the pods and a change of the rest is reloaded where they run.
*/}}
{{- define "keygate.restartOnlyConfig" -}}
{{- $c := include "keygate.config" . | fromYaml -}}
{{- range list "routes" "roles" "identityHeaders" "trustedProxies" "log" -}}
{{- $_ := unset $c . -}}
{{- end -}}
{{- with $c.upstream -}}
{{- $_ := unset . "dropHeaders" -}}
{{- $_ := unset . "stripPrefix" -}}
{{- end -}}
{{- with $c.authz -}}
{{- $_ := unset . "cacheTtl" -}}
{{- end -}}
{{- with $c.listen -}}
{{- $_ := unset . "maxInflightPerAccount" -}}
{{- $_ := unset . "bodyIdleTimeout" -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}
