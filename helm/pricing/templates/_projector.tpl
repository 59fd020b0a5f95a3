{{/*
One projector pod (the incremental loop or a CronJob run):
(dict "root" $ "task" NAME "image" IMAGE "config" TEXT "configName" NAME "args" LIST "metrics" BOOL ...)
*/}}
{{- define "pricing.projectorPod" -}}
{{- $root := .root -}}
{{- $p := $root.Values.projector -}}
metadata:
  labels:
    {{- include "pricing.selector" (dict "root" $root "component" "projector") | nindent 4 }}
    pricing.io/task: {{ .task }}
  annotations:
    checksum/config: {{ .config | sha256sum }}
    checksum/secret: {{ include "pricing.secretChecksum" $root }}
    {{- if .metrics }}
    {{- include "pricing.scrapeAnnotations" (dict "root" $root "port" $p.incremental.metricsPort) | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "pricing.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- if .restartPolicy }}
  restartPolicy: {{ .restartPolicy }}
  {{- end }}
  {{- with .terminationGracePeriodSeconds }}
  terminationGracePeriodSeconds: {{ . }}
  {{- end }}
  {{- with $p.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $p.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $p.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  initContainers:
    {{- include "pricing.renderConfigContainer" (dict "root" $root "image" .image) | nindent 4 }}
  containers:
    - name: projector
      image: {{ .image }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        - --config
        - /run/pricing/config.toml
        - --log-format
        - {{ $root.Values.logFormat | quote }}
        {{- range .args }}
        - {{ . | toString | quote }}
        {{- end }}
      {{- if .metrics }}
      ports:
        - {name: metrics, containerPort: {{ $p.incremental.metricsPort }}, protocol: TCP}
      {{- end }}
      resources:
        {{- toYaml $p.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - {name: rendered, mountPath: /run/pricing, readOnly: true}
        {{- if $root.Values.control.enabled }}
        # The servers' control file ([projector]: write mode per pair, pause),
        # the whole directory so that a ConfigMap update is seen live.
        - {name: control, mountPath: /etc/pricing/control, readOnly: true}
        {{- end }}
  volumes:
    {{- include "pricing.configVolumes" (dict "root" $root "configMap" .configName) | nindent 4 }}
    {{- if $root.Values.control.enabled }}
    - name: control
      configMap:
        name: {{ include "pricing.fullname" $root }}-control
    {{- end }}
{{- end -}}
