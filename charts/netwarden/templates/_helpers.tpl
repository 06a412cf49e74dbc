{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label. */}}
{{- define "netwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name. */}}
{{- define "netwarden.fullname" -}}
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

{{/* Name of one component: <fullname>-<component>. */}}
{{- define "netwarden.component" -}}
{{- printf "%s-%s" (include "netwarden.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "netwarden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: netwarden
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "netwarden.selectorLabels" . }}
{{- end }}

{{/* Labels that select one component's pods. */}}
{{- define "netwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netwarden.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The Netwarden image. */}}
{{- define "netwarden.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The NATS URL every component connects to. */}}
{{- define "netwarden.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s:4222" (include "netwarden.component" (dict "root" . "component" "nats")) }}
{{- else if .Values.nats.url }}
{{- .Values.nats.url }}
{{- else }}
{{- fail "nats.url is required when nats.enabled is false" }}
{{- end }}
{{- end }}

{{/* Security context shared by the engine and the operator: nothing but the program. */}}
{{- define "netwarden.restrictedSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}
