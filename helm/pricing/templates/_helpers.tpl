{{/*
Names, labels and the pieces every workload shares.
*/}}

{{- define "pricing.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pricing.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pricing
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "list") */}}
{{- define "pricing.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image of a component: (dict "root" $ "image" .Values.list.image) */}}
{{- define "pricing.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "pricing.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "pricing.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The Secret whose keys fill ${secret:KEY} placeholders. */}}
{{- define "pricing.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "pricing.fullname" .)) -}}
{{- end -}}

{{/*
Refuses a raw config fragment that sets a table the chart writes itself:
(dict "text" $text "tables" (list "server") "where" "list.config").
*/}}
{{- define "pricing.checkFragment" -}}
{{- range .tables -}}
{{- if regexMatch (printf "(?m)^\\s*\\[\\s*%s\\s*[\\].]" (regexQuoteMeta .)) $.text -}}
{{- fail (printf "%s must not contain a [%s] table: the chart writes it from values" $.where .) -}}
{{- end -}}
{{- end -}}
{{- if regexMatch "(?m)^\\s*version\\s*=" .text -}}
{{- fail (printf "%s must not set version: the chart writes it" .where) -}}
{{- end -}}
{{- end -}}

{{/*
The init container that writes the config file the binary reads: the
ConfigMap's file with every ${secret:KEY} replaced by the Secret's KEY, into
an in-memory volume. The binaries read one TOML file and no environment, so
this is how a credential reaches them without sitting in a ConfigMap.
(dict "root" $ "image" $image)
*/}}
{{- define "pricing.renderConfigContainer" -}}
- name: render-config
  image: {{ .image }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: ["/bin/sh", "-c"]
  args:
    - |
      set -eu
      out=/run/pricing/config.toml
      cp /etc/pricing/config/config.toml "$out.tmp"
      for file in /etc/pricing/secret/*; do
        [ -f "$file" ] || continue
        key=${file##*/}
        awk -v key="$key" -v file="$file" '
          BEGIN { value = ""; while ((getline line < file) > 0) value = value line; ph = "${secret:" key "}" }
          { rest = $0; done = ""
            while ((i = index(rest, ph)) > 0) { done = done substr(rest, 1, i - 1) value; rest = substr(rest, i + length(ph)) }
            print done rest }' "$out.tmp" > "$out.next"
        mv "$out.next" "$out.tmp"
      done
      if grep -n '\${secret:' "$out.tmp" >&2; then
        echo "render-config: the placeholders above have no key in the Secret" >&2
        exit 1
      fi
      mv "$out.tmp" "$out"
  securityContext:
    {{- toYaml .root.Values.containerSecurityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 32Mi}
  volumeMounts:
    - {name: config, mountPath: /etc/pricing/config, readOnly: true}
    - {name: secret, mountPath: /etc/pricing/secret, readOnly: true}
    - {name: rendered, mountPath: /run/pricing}
{{- end -}}

{{/* The volumes of the config files. (dict "root" $ "configMap" NAME) */}}
{{- define "pricing.configVolumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: secret
  secret:
    secretName: {{ include "pricing.secretName" .root }}
    optional: true
- name: rendered
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end -}}

{{/* Prometheus scrape annotations for a metrics port. */}}
{{- define "pricing.scrapeAnnotations" -}}
{{- if .root.Values.metrics.scrapeAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}

{{/* Spread over zones first, then hosts. (dict "root" $ "component" "list" "track" "stable") */}}
{{- define "pricing.topologySpread" -}}
{{- range $i, $c := .root.Values.topologySpread }}
{{- with $c }}
- maxSkew: {{ .maxSkew }}
  topologyKey: {{ .topologyKey }}
  whenUnsatisfiable: {{ .whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "pricing.selector" (dict "root" $.root "component" $.component) | nindent 6 }}
      pricing.io/track: {{ $.track }}
{{- end }}
{{- end }}
{{- end -}}
