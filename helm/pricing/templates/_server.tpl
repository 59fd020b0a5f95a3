{{/*
One gRPC server (list, detail, or the list canary): its config file, its
Deployment and its Service. Called with
  (dict "root" $ "component" "list" "track" "stable" "name" NAME "v" VALUES
        "configName" CONFIGMAP "serviceName" SERVICE "selectTrack" BOOL)
where VALUES is .Values.list, .Values.detail or the canary's merged values.
*/}}

{{/* The server's config file: version, the raw fragment, then [server]. */}}
{{- define "pricing.serverConfig" -}}
{{- include "pricing.checkFragment" (dict "text" .v.config "tables" (list "server") "where" (printf "%s.config" .component)) -}}
# Rendered by the pricing chart from values ({{ .component }}.config).
# Credential placeholders are filled from the Secret when the pod starts.
version = 1

{{ .v.config | trim }}

# Written by the chart from {{ .component }}.server and {{ .component }}.ports.
[server]
listen = "{{ .root.Values.bindAddress }}:{{ .v.ports.grpc }}"
metrics_listen = "{{ .root.Values.bindAddress }}:{{ .v.ports.metrics }}"
drain_grace_ms = {{ int64 .v.server.drainGraceMs }}
log = {{ .v.server.log | quote }}
worker_threads = {{ int64 .v.server.workerThreads }}
{{- if .root.Values.control.enabled }}
# The live control file (ConfigMap {{ .controlName }}, mounted as a directory).
control_file = "/etc/pricing/control/control.toml"
control_poll_ms = {{ int64 .root.Values.control.pollMs }}
{{- end }}
{{- end -}}

{{- define "pricing.serverChecks" -}}
{{- $grace := int64 .v.terminationGracePeriodSeconds -}}
{{- $needed := add (div (int64 .v.server.drainGraceMs) 1000) (int64 .v.preStopSleepSeconds) 1 -}}
{{- if le $grace $needed -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must be above preStopSleepSeconds + server.drainGraceMs/1000 + 1 (%d): the pod would be killed while it drains" .component $grace $needed) -}}
{{- end -}}
{{- $live := .v.probes.liveness -}}
{{- if le (mul (int64 $live.periodSeconds) (int64 $live.failureThreshold) 1000) (int64 .v.server.drainGraceMs) -}}
{{- fail (printf "%s.probes.liveness: periodSeconds x failureThreshold must exceed server.drainGraceMs: health reports NOT_SERVING while draining, and the liveness probe must not kill a draining pod" .component) -}}
{{- end -}}
{{- end -}}

{{- define "pricing.serverDeployment" -}}
{{- include "pricing.serverChecks" . -}}
{{- $root := .root -}}
{{- $v := .v -}}
{{- $image := include "pricing.image" (dict "root" $root "image" $v.image) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "pricing.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    pricing.io/track: {{ .track }}
spec:
  {{- if not (and $v.autoscaling.enabled (eq .track "stable")) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 25%
  selector:
    matchLabels:
      {{- include "pricing.selector" (dict "root" $root "component" .component) | nindent 6 }}
      pricing.io/track: {{ .track }}
  template:
    metadata:
      labels:
        {{- include "pricing.selector" (dict "root" $root "component" .component) | nindent 8 }}
        pricing.io/track: {{ .track }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # A new server config or Secret rolls the pods; the control config is
        # left out on purpose: it is re-read live, no restart.
        checksum/config: {{ include "pricing.serverConfig" . | sha256sum }}
        checksum/secret: {{ include "pricing.secretChecksum" $root }}
        {{- include "pricing.scrapeAnnotations" (dict "root" $root "port" $v.ports.metrics) | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "pricing.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      topologySpreadConstraints:
        {{- include "pricing.topologySpread" (dict "root" $root "component" .component "track" .track) | trim | nindent 8 }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      initContainers:
        {{- include "pricing.renderConfigContainer" (dict "root" $root "image" $image) | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ $image }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - --config
            - /run/pricing/config.toml
            - --log-format
            - {{ $root.Values.logFormat | quote }}
            {{- with $v.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $root.Values.zone }}
          {{- if or .value .podLabel }}
          env:
            # This pod's zone, read once at start: a control-file pair with
            # prefer_local and no `local` reads the cluster of this zone first.
            - name: PRICING_ZONE
              {{- if .value }}
              value: {{ .value | quote }}
              {{- else }}
              valueFrom:
                fieldRef:
                  fieldPath: metadata.labels['{{ .podLabel }}']
              {{- end }}
          {{- end }}
          {{- end }}
          ports:
            - {name: grpc, containerPort: {{ $v.ports.grpc }}, protocol: TCP}
            - {name: metrics, containerPort: {{ $v.ports.metrics }}, protocol: TCP}
          # Kubernetes' own gRPC probes call grpc.health.v1.Health/Check on the
          # gRPC port (health and reflection are exempt from caller auth).
          # The server reports NOT_SERVING from SIGTERM until its drain grace
          # ends, so readiness drops and the pod leaves the endpoints while it
          # still answers the calls already routed to it.
          startupProbe:
            grpc: {port: {{ $v.ports.grpc }}}
            periodSeconds: {{ $v.probes.startup.periodSeconds }}
            failureThreshold: {{ $v.probes.startup.failureThreshold }}
          readinessProbe:
            grpc: {port: {{ $v.ports.grpc }}}
            periodSeconds: {{ $v.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $v.probes.readiness.failureThreshold }}
            successThreshold: 1
          livenessProbe:
            grpc: {port: {{ $v.ports.grpc }}}
            periodSeconds: {{ $v.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $v.probes.liveness.failureThreshold }}
          {{- if gt (int64 $v.preStopSleepSeconds) 0 }}
          lifecycle:
            # Wait before SIGTERM so that endpoint removal has spread before
            # the server even starts draining (Kubernetes 1.30+ sleep action).
            preStop:
              sleep:
                seconds: {{ $v.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - {name: rendered, mountPath: /run/pricing, readOnly: true}
            # The whole directory, not a subPath: a ConfigMap update swaps the
            # directory's ..data link, which the server's poll sees.
            {{- if $root.Values.control.enabled }}
            - {name: control, mountPath: /etc/pricing/control, readOnly: true}
            {{- end }}
            - {name: data, mountPath: /var/lib/pricing}
      volumes:
        {{- include "pricing.configVolumes" (dict "root" $root "configMap" .configName) | nindent 8 }}
        {{- if $root.Values.control.enabled }}
        - name: control
          configMap:
            name: {{ .controlName }}
        {{- end }}
        - name: data
          emptyDir:
            sizeLimit: {{ $v.dataSizeLimit }}
{{- end -}}

{{- define "pricing.serverService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .serviceName }}
  labels:
    {{- include "pricing.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    pricing.io/track: {{ .track }}
    {{- if .scrape }}
    # The ServiceMonitor scrapes Services with this label; a canary that is
    # also behind the stable Service goes without, so no pod is scraped twice.
    pricing.io/scrape: "true"
    {{- end }}
  {{- with .v.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .v.service.type }}
  {{- if .v.service.headless }}
  # Headless: clients resolve every pod and balance per call (gRPC keeps one
  # HTTP/2 connection open, which a ClusterIP would pin to one pod).
  clusterIP: None
  {{- end }}
  selector:
    {{- include "pricing.selector" (dict "root" .root "component" .component) | nindent 4 }}
    {{- if .selectTrack }}
    pricing.io/track: {{ .track }}
    {{- end }}
  ports:
    - {name: grpc, port: {{ .v.ports.grpc }}, targetPort: grpc, protocol: TCP, appProtocol: grpc}
    - {name: metrics, port: {{ .v.ports.metrics }}, targetPort: metrics, protocol: TCP, appProtocol: http}
{{- end -}}
