package images

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// extractAll decodes a YAML stream and extracts every image, as "ref field" strings.
func extractAll(t testing.TB, src string) ([]string, error) {
	t.Helper()
	objs, err := DecodeYAML("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	var got []string
	for _, o := range objs {
		occ, err := Extract(o)
		if err != nil {
			return got, err
		}
		for _, x := range occ {
			got = append(got, x.Ref.String()+" "+x.Location.Kind+"/"+x.Location.Name+" "+x.Location.Container+" "+x.Location.Field)
		}
	}
	return got, nil
}

func TestExtractWorkloadKinds(t *testing.T) {
	podSpec := `
      initContainers:
        - name: init
          image: busybox:1.36
      containers:
        - name: app
          image: nginx
        - name: side
          image: ghcr.io/acme/sidecar@sha256:0000000000000000000000000000000000000000000000000000000000000000`
	// indent shifts every line of s by n spaces (n < 0 removes spaces).
	indent := func(s string, n int) string {
		if n >= 0 {
			return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
		}
		return strings.ReplaceAll(s, "\n"+strings.Repeat(" ", -n), "\n")
	}
	want := func(kind, name, at string) []string {
		return []string{
			"docker.io/library/nginx:latest " + kind + "/" + name + " app " + at + ".containers[0].image",
			"ghcr.io/acme/sidecar@sha256:0000000000000000000000000000000000000000000000000000000000000000 " + kind + "/" + name + " side " + at + ".containers[1].image",
			"docker.io/library/busybox:1.36 " + kind + "/" + name + " init " + at + ".initContainers[0].image",
		}
	}
	tests := []struct {
		apiVersion, kind, body, at string
	}{
		{"v1", "Pod", "spec:" + indent(podSpec, -4), "spec"},
		{"v1", "PodTemplate", "template:\n  spec:" + indent(podSpec, -2), "template.spec"},
		{"apps/v1", "Deployment", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"apps/v1", "StatefulSet", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"apps/v1", "DaemonSet", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"apps/v1", "ReplicaSet", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"v1", "ReplicationController", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"batch/v1", "Job", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"batch/v1", "CronJob", "spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:" + indent(podSpec, 4), "spec.jobTemplate.spec.template.spec"},
		// Custom resources: found by shape wherever the pod spec sits.
		{"argoproj.io/v1alpha1", "Rollout", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"serving.knative.dev/v1", "Service", "spec:\n  template:\n    spec:" + podSpec, "spec.template.spec"},
		{"example.com/v1", "Pipeline", "spec:\n  stages:\n    - worker:\n        spec:" + indent(podSpec, 4), "spec.stages[0].worker.spec"},
		// A custom resource reusing a built-in kind name.
		{"batch.volcano.sh/v1alpha1", "Job", "spec:\n  tasks:\n    - template:\n        spec:" + indent(podSpec, 4), "spec.tasks[0].template.spec"},
	}
	for _, tt := range tests {
		t.Run(tt.apiVersion+"/"+tt.kind, func(t *testing.T) {
			src := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata:\n  name: x\n%s\n", tt.apiVersion, tt.kind, tt.body)
			got, err := extractAll(t, src)
			if err != nil {
				t.Fatal(err)
			}
			if w := want(tt.kind, "x", tt.at); !reflect.DeepEqual(got, w) {
				t.Errorf("got\n%s\nwant\n%s\nsource:\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"), src)
			}
		})
	}
}

func TestExtractEphemeralContainers(t *testing.T) {
	got, err := extractAll(t, `
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers: [{name: app, image: "registry.local:5000/team/app:2.0"}]
  ephemeralContainers: [{name: dbg, image: "busybox:1.36"}]
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"registry.local:5000/team/app:2.0 Pod/debug app spec.containers[0].image",
		"docker.io/library/busybox:1.36 Pod/debug dbg spec.ephemeralContainers[0].image",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExtractNoImages(t *testing.T) {
	for _, src := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {containers: '[{image: nginx}]'}",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}",
		// A CRD's schema has a "containers" property that is a mapping.
		"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: c}\nspec:\n  versions:\n  - schema:\n      openAPIV3Schema:\n        properties:\n          containers: {type: array, items: {properties: {image: {type: string}}}}",
		// An unknown kind with a list called containers that is not a pod spec.
		"apiVersion: x/v1\nkind: Shipment\nmetadata: {name: s}\nspec: {containers: [{id: 40ft}]}",
	} {
		got, err := extractAll(t, src)
		if err != nil || len(got) != 0 {
			t.Errorf("%s: got %q, %v; want nothing", src, got, err)
		}
	}
}

func TestExtractErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"invalid reference", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: 'Nginx:1'}]",
			`test.yaml:1: Deployment/web: container "app"`},
		{"reference with space", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'nginx :1'}]}",
			`test.yaml:1: Pod/p: container "a"`},
		{"missing image", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}]}",
			`Pod/p: container "a" (spec.containers[0]) has no image`},
		{"image not a string", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: [x]}]}",
			`image is a list, want a string`},
		{"containers not a list", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: {name: a}}",
			`spec.containers is a mapping, want a list`},
		{"template not a mapping", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: 3}",
			`spec.template is a number, want an object`},
		{"CRD with bad image", "---\n\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec: {template: {spec: {containers: [{name: c, image: 'UPPER/case'}]}}}",
			`test.yaml:3: Rollout/r: container "c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := extractAll(t, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestExtractTooDeep(t *testing.T) {
	doc := map[string]any{"kind": "Deep", "metadata": map[string]any{"name": "d"}}
	cur := doc
	for i := 0; i < maxDepth+10; i++ {
		next := map[string]any{}
		cur["x"] = next
		cur = next
	}
	_, err := Extract(Object{File: "f", Doc: doc})
	if err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("error %v, want nesting error", err)
	}
}

func TestSetDedupAndOrder(t *testing.T) {
	objs, err := DecodeYAML("a.yaml", []byte(`
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {containers: [{name: c, image: redis:7.4.1}, {name: d, image: docker.io/library/nginx:1.27.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: c, image: index.docker.io/library/redis:7.4.1}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	for _, o := range objs {
		occ, err := Extract(o)
		if err != nil {
			t.Fatal(err)
		}
		s.AddAll(occ)
	}
	if got, want := s.Refs(), []string{"docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("refs %q, want %q", got, want)
	}
	list := s.List()
	if len(list[1].Locations) != 2 || list[1].Locations[0].Line != 2 || list[1].Locations[1].Name != "a" {
		t.Errorf("redis locations %+v", list[1].Locations)
	}
}

func TestParseList(t *testing.T) {
	got, err := ParseList("extra.txt", []byte("# operator images\n\nquay.io/prometheus/prometheus:v3.0.0  # pulled by the operator\n\t busybox \r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Ref.String() != "quay.io/prometheus/prometheus:v3.0.0" || got[0].Location.Line != 3 ||
		got[1].Ref.String() != "docker.io/library/busybox:latest" || got[1].Location.Line != 4 {
		t.Fatalf("got %+v", got)
	}
	for _, tt := range []struct{ src, want string }{
		{"nginx\nnot valid!\n", "extra.txt:2: "},
		{"nginx redis\n", `extra.txt:1: "nginx redis": one image reference per line`},
		{"ok\nUPPER:1\n", "extra.txt:2: "},
		{"x@sha256:abc\n", "extra.txt:1: "},
	} {
		_, err := ParseList("extra.txt", []byte(tt.src))
		var de *DecodeError
		if err == nil || !errors.As(err, &de) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want prefix %q", tt.src, err, tt.want)
		}
	}
}
