package images

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const benchObjects = 10000

// benchManifests generates a realistic manifest stream of n objects: a mix
// of Deployments, Services, ConfigMaps, CronJobs and Argo Rollouts (which
// take the generic search).
func benchManifests(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-%[1]d
  namespace: shop
  labels: {app: web-%[1]d, tier: frontend}
spec:
  replicas: 2
  selector: {matchLabels: {app: web-%[1]d}}
  template:
    metadata: {labels: {app: web-%[1]d}}
    spec:
      initContainers:
        - name: migrate
          image: ghcr.io/acme/migrate:%[1]d
          args: ["--wait", "60s"]
      containers:
        - name: web
          image: docker.io/library/nginx:1.27.%[2]d
          ports: [{containerPort: 80}]
          resources: {limits: {cpu: 500m, memory: 128Mi}}
          env: [{name: MODE, value: production}, {name: PORT, value: "80"}]
        - name: metrics
          image: registry.local:5000/team/exporter:2.%[2]d
`, i, i%13)
		case 1:
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: web-%d}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n", i)
		case 2:
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg-%d}\ndata:\n  app.conf: |\n    listen 80;\n    server_name example.com;\n", i)
		case 3:
			fmt.Fprintf(&b, `---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup-%d}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: backup, image: "redis:7.4.1", command: [redis-cli, save]}]
`, i)
		case 4:
			fmt.Fprintf(&b, `---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: api-%d}
spec:
  strategy: {canary: {steps: [{setWeight: 20}, {pause: {duration: 1m}}]}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "ghcr.io/acme/api@sha256:%064d"}]
`, i, i)
		}
	}
	return b.Bytes()
}

// BenchmarkExtract measures extraction over 10,000 decoded objects and
// reports objects/s. Baseline in the same run: a bare traversal that visits
// every value of the same objects and does nothing else.
func BenchmarkExtract(b *testing.B) {
	objs, err := DecodeYAML("bench.yaml", benchManifests(benchObjects))
	if err != nil || len(objs) != benchObjects {
		b.Fatalf("decode: %d objects, %v", len(objs), err)
	}
	baseline := timeIt(func() {
		for _, o := range objs {
			visit(o.Doc)
		}
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var s Set
		for _, o := range objs {
			occ, err := Extract(o)
			if err != nil {
				b.Fatal(err)
			}
			s.AddAll(occ)
		}
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(benchObjects)/per.Seconds(), "objects/s")
	b.ReportMetric(float64(per)/float64(baseline), "x-bare-traversal")
}

// BenchmarkDecodeExtract measures the whole path for plain manifests: YAML
// stream to deduplicated images. Baseline in the same run: decoding the same
// stream with the YAML library alone into generic values.
func BenchmarkDecodeExtract(b *testing.B) {
	data := benchManifests(benchObjects)
	baseline := timeIt(func() {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var v any
			if err := dec.Decode(&v); errors.Is(err, io.EOF) {
				return
			} else if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		objs, err := DecodeYAML("bench.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		var s Set
		for _, o := range objs {
			occ, err := Extract(o)
			if err != nil {
				b.Fatal(err)
			}
			s.AddAll(occ)
		}
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(benchObjects)/per.Seconds(), "objects/s")
	b.ReportMetric(float64(per)/float64(baseline), "x-yaml-decode")
}

func timeIt(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}

var visited int

func visit(v any) {
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			visit(e)
		}
	case []any:
		for _, e := range t {
			visit(e)
		}
	default:
		visited++
	}
}
