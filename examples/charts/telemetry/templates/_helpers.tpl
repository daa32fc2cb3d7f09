{{- define "telemetry.agentImage" -}}
{{- $img := .Values.agent.image -}}
{{- printf "%s/%s:%s" $img.registry $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
