package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var metav1GetOptions = metav1.GetOptions{}

// resources maps the kinds this test applies to their API resources; a
// table is enough for a handful of kinds and avoids a discovery client.
var resources = map[schema.GroupVersionKind]struct {
	resource   string
	namespaced bool
}{
	{Version: "v1", Kind: "Namespace"}:                                               {"namespaces", false},
	{Version: "v1", Kind: "ConfigMap"}:                                               {"configmaps", true},
	{Version: "v1", Kind: "Secret"}:                                                  {"secrets", true},
	{Version: "v1", Kind: "ServiceAccount"}:                                          {"serviceaccounts", true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}:                {"roles", true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}:         {"rolebindings", true},
	{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}: {"customresourcedefinitions", false},
	{Group: "argoproj.io", Version: "v1alpha1", Kind: "AppProject"}:                  {"appprojects", true},
	{Group: "argoproj.io", Version: "v1alpha1", Kind: "Application"}:                 {"applications", true},
}

var (
	applicationsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	crdGVR          = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// decodeYAML splits a multi-document YAML stream into objects, skipping
// empty documents.
func decodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// apply server-side-applies objs, as `kubectl apply --server-side` would;
// an object without a namespace goes to defaultNS.
func (c *cluster) apply(t *testing.T, defaultNS string, objs ...*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		r, ok := resources[gvk]
		if !ok {
			t.Fatalf("apply: kind %s not in the test's resource table", gvk)
		}
		gvr := gvk.GroupVersion().WithResource(r.resource)
		var err error
		if r.namespaced {
			ns := o.GetNamespace()
			if ns == "" {
				ns = defaultNS
				o.SetNamespace(ns)
			}
			_, err = c.dyn.Resource(gvr).Namespace(ns).Apply(t.Context(), o.GetName(), o, metav1.ApplyOptions{FieldManager: "ballast-e2e", Force: true})
		} else {
			_, err = c.dyn.Resource(gvr).Apply(t.Context(), o.GetName(), o, metav1.ApplyOptions{FieldManager: "ballast-e2e", Force: true})
		}
		if err != nil {
			t.Fatalf("apply %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
}

// applyYAML applies every document of data.
func (c *cluster) applyYAML(t *testing.T, defaultNS string, data []byte) {
	t.Helper()
	objs, err := decodeYAML(data)
	if err != nil {
		t.Fatalf("decode YAML: %v", err)
	}
	c.apply(t, defaultNS, objs...)
}

// waitCRD waits until the CRD name is Established.
func (c *cluster) waitCRD(t *testing.T, name string) {
	t.Helper()
	waitFor(t, 30*time.Second, "CRD "+name+" established", func() (bool, error) {
		o, err := c.dyn.Resource(crdGVR).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		for _, cd := range conds {
			m, _ := cd.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, fmt.Errorf("not established yet")
	})
}

// filterKinds keeps the objects whose kind is one of kinds.
func filterKinds(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		for _, k := range kinds {
			if o.GetKind() == k {
				out = append(out, o)
			}
		}
	}
	return out
}

// str reads a string field of obj ("" if absent).
func str(obj map[string]any, fields ...string) string {
	s, _, _ := unstructured.NestedString(obj, fields...)
	return s
}

// inCluster rewrites the in-cluster Service names that `ballast install`
// generates to the loopback addresses the daemon listens on here: there is
// no cluster DNS outside a cluster. Nothing else in the generated files is
// changed.
func inCluster(data []byte, httpAddr, registryAddr string) []byte {
	s := string(data)
	s = strings.ReplaceAll(s, "ballast-edge-registry.ballast.svc:"+portOf(registryAddr), registryAddr)
	s = strings.ReplaceAll(s, "ballast-edge.ballast.svc:"+portOf(httpAddr), httpAddr)
	return []byte(s)
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
