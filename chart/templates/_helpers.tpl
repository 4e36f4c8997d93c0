{{- define "release-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "release-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "release-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "release-server.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "release-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "release-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "release-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "release-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the token: the operator's, or the one this chart creates. */}}
{{- define "release-server.secretName" -}}
{{- default (include "release-server.fullname" .) .Values.app.existingSecret }}
{{- end }}

{{- define "release-server.secretKey" -}}
{{- if .Values.app.existingSecret }}{{ .Values.app.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* The Secret holding tokens.yaml, when tokens are configured. */}}
{{- define "release-server.tokensSecretName" -}}
{{- default (printf "%s-tokens" (include "release-server.fullname" .)) .Values.app.tokensExistingSecret }}
{{- end }}

{{- define "release-server.claimName" -}}
{{- default (include "release-server.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/* Release Server's config.yaml, from app.*; the token is not here but in the Secret. */}}
{{- define "release-server.config" -}}
port: {{ .Values.app.port }}
host: 0.0.0.0
{{- if eq .Values.storage.backend "s3" }}
storage_backend: s3
s3_bucket: {{ .Values.storage.s3.bucket | quote }}
s3_prefix: {{ .Values.storage.s3.prefix | quote }}
{{- with .Values.storage.s3.endpoint }}
s3_endpoint: {{ . | quote }}
{{- end }}
s3_region: {{ .Values.storage.s3.region | quote }}
s3_force_path_style: {{ .Values.storage.s3.forcePathStyle }}
index_refresh_seconds: {{ .Values.storage.s3.indexRefreshSeconds }}
download_redirect: {{ .Values.storage.s3.downloadRedirect }}
download_redirect_expiry_seconds: {{ .Values.storage.s3.downloadRedirectExpirySeconds }}
{{- else }}
storage_path: /data
{{- end }}
max_packages: {{ .Values.app.maxPackages }}
max_releases: {{ .Values.app.maxReleases }}
max_versions_per_package: {{ .Values.app.maxVersionsPerPackage }}
max_upload_bytes: {{ .Values.app.maxUploadBytes | quote }}
{{- /* Download URLs are built from public_url: when it is not given, the host the Ingress or HTTPRoute routes is the
one clients use, so forwarded headers never decide it. */}}
{{- $publicUrl := .Values.app.publicUrl }}
{{- if and (not $publicUrl) .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := (first .Values.ingress.hosts).host }}
{{- $tls := false }}
{{- range .Values.ingress.tls }}{{- if has $host (default (list) .hosts) }}{{- $tls = true }}{{- end }}{{- end }}
{{- $publicUrl = printf "%s://%s" (ternary "https" "http" $tls) $host }}
{{- else if and (not $publicUrl) .Values.httpRoute.enabled .Values.httpRoute.hostnames }}
{{- $publicUrl = printf "https://%s" (first .Values.httpRoute.hostnames) }}
{{- end }}
{{- with $publicUrl }}
public_url: {{ . | quote }}
{{- end }}
trust_proxy: {{ .Values.app.trustProxy | quote }}
read_access: {{ .Values.app.readAccess }}
auth_failures_per_minute: {{ .Values.app.authFailuresPerMinute }}
{{- if or .Values.app.tokens .Values.app.tokensExistingSecret }}
tokens_file: /etc/release-server/tokens/tokens.yaml
{{- end }}
log_level: {{ .Values.app.logLevel }}
approve_uploads: {{ .Values.app.approveUploads }}
workers: {{ .Values.app.workers }}
{{- with .Values.app.sources }}
{{- /* Credentials stay in Secrets: a source's headers name an env var or a mounted file, never a value. */}}
sources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
