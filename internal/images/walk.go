// Package images finds every container image that Kubernetes objects will
// run. It works on decoded objects, so it serves plain manifests as well as
// the output of Helm and Kustomize (rendered elsewhere), and it imports no
// renderer: the edge side may use it.
package images

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ballast-dev/ballast/internal/imageref"
)

// Location is one place where an image reference was found.
type Location struct {
	File      string `json:"file"`
	Line      int    `json:"line,omitempty"` // line of the object, when known
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container,omitempty"`
	Field     string `json:"field,omitempty"` // e.g. spec.template.spec.initContainers[0].image
	Via       string `json:"via,omitempty"`   // what rendered the object, see Object.Via
}

// Occurrence is one image reference in one object, normalized.
type Occurrence struct {
	Ref      imageref.Ref
	Raw      string // the reference as written
	Location Location
}

// podSpecPaths are the pod spec locations of the built-in workload kinds,
// keyed by kind and checked strictly: a malformed built-in workload is an
// error, not something to skip. Other kinds are searched generically.
var podSpecPaths = map[string][]string{
	"Pod":                   {"spec"},
	"PodTemplate":           {"template", "spec"},
	"Deployment":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// builtinGroups are the API groups whose kinds above have the shape above; a
// custom resource that reuses a kind name (e.g. another group's "Job") is
// searched generically instead.
var builtinGroups = map[string]bool{"": true, "apps": true, "batch": true, "extensions": true}

// containerFields are the container lists of a pod spec.
var containerFields = []string{"containers", "initContainers", "ephemeralContainers"}

// maxDepth bounds the generic search. Real objects nest a few dozen levels;
// refusing deeper input keeps hostile input from exhausting the stack and
// never silently skips a deep pod spec.
const maxDepth = 256

// Extract returns every image reference in obj's pod specs, normalized. The
// built-in workload kinds are read at their pod spec; any other kind (custom
// resources such as Argo Rollouts or Knative Services) is searched for
// pod-spec-shaped objects: a "containers" list whose entries have an "image".
// An invalid reference or a malformed pod spec is an error naming the file,
// line, kind and name.
func Extract(obj Object) ([]Occurrence, error) {
	w := walker{obj: obj}
	if path, ok := podSpecPaths[obj.Kind()]; ok && builtinGroups[group(obj.APIVersion())] {
		spec, err := w.follow(path)
		if err != nil {
			return nil, err
		}
		if spec != nil {
			if err := w.podSpec(spec, strings.Join(path, "."), true); err != nil {
				return nil, err
			}
		}
		return w.out, nil
	}
	if err := w.search(obj.Doc, "", 0); err != nil {
		return nil, err
	}
	return w.out, nil
}

func group(apiVersion string) string {
	g, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return "" // "v1": the core group
	}
	return g
}

type walker struct {
	obj Object
	out []Occurrence
}

func (w *walker) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", w.obj.where(), fmt.Sprintf(format, args...))
}

// follow walks a fixed path of mapping keys; a missing step means the object
// has no pod spec (a template-less object is the API server's business).
func (w *walker) follow(path []string) (map[string]any, error) {
	cur := w.obj.Doc
	for i, key := range path {
		v, ok := cur[key]
		if !ok || v == nil {
			return nil, nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, w.errorf("%s is a %s, want an object", strings.Join(path[:i+1], "."), typeName(v))
		}
		cur = m
	}
	return cur, nil
}

// podSpec collects the images of one pod spec at field path at. strict says
// the container lists must be well formed (built-in kinds); otherwise the
// caller has already checked that this looks like a pod spec.
func (w *walker) podSpec(spec map[string]any, at string, strict bool) error {
	for _, field := range containerFields {
		v, ok := spec[field]
		if !ok || v == nil {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			if !strict {
				continue
			}
			return w.errorf("%s.%s is a %s, want a list", at, field, typeName(v))
		}
		for i, c := range list {
			cm, ok := c.(map[string]any)
			fieldPath := fmt.Sprintf("%s.%s[%d]", at, field, i)
			if !ok {
				return w.errorf("%s is a %s, want a container", fieldPath, typeName(c))
			}
			if err := w.container(cm, fieldPath); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) container(c map[string]any, at string) error {
	cname := str(c["name"])
	label := cname
	if label == "" {
		label = at
	}
	v, ok := c["image"]
	if !ok || v == nil {
		return w.errorf("container %q (%s) has no image", label, at)
	}
	raw, ok := v.(string)
	if !ok {
		return w.errorf("container %q (%s): image is a %s, want a string", label, at, typeName(v))
	}
	ref, err := imageref.Parse(raw)
	if err != nil {
		return w.errorf("container %q: %v", label, err)
	}
	w.out = append(w.out, Occurrence{
		Ref: ref,
		Raw: raw,
		Location: Location{
			File:      w.obj.File,
			Line:      w.obj.Line,
			Kind:      w.obj.Kind(),
			Name:      w.obj.Name(),
			Namespace: w.obj.Namespace(),
			Container: cname,
			Field:     at + ".image",
			Via:       w.obj.Via,
		},
	})
	return nil
}

// search walks any value looking for pod-spec-shaped mappings.
func (w *walker) search(v any, at string, depth int) error {
	if depth > maxDepth {
		return w.errorf("nested deeper than %d levels at %s", maxDepth, at)
	}
	switch t := v.(type) {
	case map[string]any:
		if looksLikePodSpec(t) {
			if err := w.podSpec(t, strings.TrimPrefix(at, "."), false); err != nil {
				return err
			}
		}
		// Visit keys in order so that errors and results are deterministic.
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if isContainerField(k) && looksLikePodSpec(t) {
				continue // already collected
			}
			if err := w.search(t[k], at+"."+k, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range t {
			if err := w.search(e, at+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func isContainerField(k string) bool {
	return k == "containers" || k == "initContainers" || k == "ephemeralContainers"
}

// looksLikePodSpec: a "containers" list of mappings at least one of which has
// an "image" key. Schemas (a CRD's openAPIV3Schema "containers" property) are
// mappings, not lists, and do not match.
func looksLikePodSpec(m map[string]any) bool {
	list, ok := m["containers"].([]any)
	if !ok || len(list) == 0 {
		return false
	}
	hasImage := false
	for _, c := range list {
		cm, ok := c.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := cm["image"]; ok {
			hasImage = true
		}
	}
	return hasImage
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any, map[any]any:
		return "mapping"
	case []any:
		return "list"
	case string:
		return "string"
	case nil:
		return "null"
	case bool:
		return "boolean"
	default:
		return "number"
	}
}
