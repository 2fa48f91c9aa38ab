{{- define "envoy-jwt-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "envoy-jwt-authz.fullname" -}}
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

{{- define "envoy-jwt-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "envoy-jwt-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "envoy-jwt-authz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "envoy-jwt-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "envoy-jwt-authz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "envoy-jwt-authz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The service's config.yaml: .Values.config with the listen addresses taken from
.Values.ports, so the Service, the probes and the process always agree.
*/}}
{{- define "envoy-jwt-authz.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $server := deepCopy (get $config "server" | default dict) }}
{{- if or (hasKey $server "grpc_address") (hasKey $server "http_address") }}
{{- fail "config.server.grpc_address / config.server.http_address are set by the chart from ports.grpc / ports.http; remove them from config" }}
{{- end }}
{{- $_ := set $server "grpc_address" (printf "0.0.0.0:%d" (int .Values.ports.grpc)) }}
{{- $_ := set $server "http_address" (printf "0.0.0.0:%d" (int .Values.ports.http)) }}
{{- $_ := set $config "server" $server }}
{{- toYaml $config }}
{{- end }}
