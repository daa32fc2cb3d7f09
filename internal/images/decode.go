package images

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Object is one Kubernetes object decoded from a manifest, with where it
// came from.
type Object struct {
	File string         // file the object was read from, or the template that rendered it
	Line int            // 1-based line where the object starts in File; 0 when unknown
	Doc  map[string]any // the object as decoded from YAML or JSON
	// Via says what rendered the object when a tool did, e.g. "kustomize
	// apps/shop/overlays/edge"; empty for plain manifests.
	Via string
}

// Kind is the object's kind, or "" when it has none.
func (o Object) Kind() string { return str(o.Doc["kind"]) }

// APIVersion is the object's apiVersion, or "".
func (o Object) APIVersion() string { return str(o.Doc["apiVersion"]) }

// Name is metadata.name, or "".
func (o Object) Name() string { return str(asMap(o.Doc["metadata"])["name"]) }

// Namespace is metadata.namespace, or "".
func (o Object) Namespace() string { return str(asMap(o.Doc["metadata"])["namespace"]) }

// where says where the object is, for error messages: "file:line: Kind/name".
func (o Object) where() string {
	loc := o.File
	if o.Line > 0 {
		loc += ":" + strconv.Itoa(o.Line)
	}
	return fmt.Sprintf("%s: %s/%s", loc, o.Kind(), o.Name())
}

// DecodeError is bad manifest input: the file and, when the parser knows it,
// the line.
type DecodeError struct {
	File string
	Line int // 0 when unknown
	Err  error
}

func (e *DecodeError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ErrNoKind marks a document that is a mapping without a kind: not a
// Kubernetes object. Directory sources use it to tell unrelated YAML files
// (Helm values, CI config) from broken manifests, as Argo CD does.
var ErrNoKind = errors.New("document has no kind")

// Decode reads every Kubernetes object from a manifest file: a JSON file
// (name ending in .json) holds exactly one value; anything else is a YAML
// stream whose documents are separated by "---". Objects whose kind ends in
// "List" are replaced by their items. Empty documents are skipped.
func Decode(file string, data []byte) ([]Object, error) {
	if strings.EqualFold(filepath.Ext(file), ".json") {
		return DecodeJSON(file, data)
	}
	return DecodeYAML(file, data)
}

// DecodeYAML reads every object of a YAML stream (which may also be JSON).
// On error it returns the objects decoded before the bad document.
func DecodeYAML(file string, data []byte) (objs []Object, err error) {
	// The YAML parser is a large body of code fed with outside input; a
	// panic in it must become bad input, not a crash.
	defer func() {
		if r := recover(); r != nil {
			err = &DecodeError{File: file, Err: fmt.Errorf("YAML parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return objs, yamlError(file, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		got, err := fromNode(file, doc.Content[0])
		if err != nil {
			return objs, err
		}
		objs = append(objs, got...)
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a YAML parser error into a DecodeError with its line.
func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &DecodeError{File: file, Line: n, Err: errors.New(strings.TrimPrefix(msg, m[0]))}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// "line N: cannot unmarshal …"
		first := te.Errors[0]
		if rest, ok := strings.CutPrefix(first, "line "); ok {
			num, tail, _ := strings.Cut(rest, ": ")
			if n, convErr := strconv.Atoi(num); convErr == nil {
				return &DecodeError{File: file, Line: n, Err: errors.New(tail)}
			}
		}
	}
	return &DecodeError{File: file, Err: err}
}

// fromNode decodes one top-level YAML value into objects.
func fromNode(file string, n *yaml.Node) ([]Object, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil // "---" followed by nothing, or an explicit null
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, &DecodeError{File: file, Line: n.Line, Err: fmt.Errorf("document is a %s, want a Kubernetes object (a mapping)", nodeKind(n))}
	}
	var doc map[string]any
	if err := n.Decode(&doc); err != nil {
		return nil, yamlError(file, err)
	}
	if str(doc["kind"]) == "" {
		return nil, &DecodeError{File: file, Line: n.Line, Err: ErrNoKind}
	}
	if !isListKind(doc) {
		return []Object{{File: file, Line: n.Line, Doc: doc}}, nil
	}
	// A List: its items are the objects, each with its own line.
	items := mappingValue(n, "items")
	if items == nil || (items.Kind == yaml.ScalarNode && items.Tag == "!!null") {
		return nil, nil
	}
	if items.Kind != yaml.SequenceNode {
		return nil, &DecodeError{File: file, Line: items.Line, Err: fmt.Errorf("%s items: is a %s, want a list", str(doc["kind"]), nodeKind(items))}
	}
	var out []Object
	for _, it := range items.Content {
		got, err := fromNode(file, it)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// isListKind reports whether doc is a list of objects (kind List, or
// FooList as the API server returns them).
func isListKind(doc map[string]any) bool {
	if !strings.HasSuffix(str(doc["kind"]), "List") {
		return false
	}
	_, has := doc["items"]
	return has
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.MappingNode:
		return "mapping"
	default:
		return "non-object value"
	}
}

// DecodeJSON reads a JSON file holding exactly one object (or a List), as
// Argo CD reads .json manifests.
func DecodeJSON(file string, data []byte) ([]Object, error) {
	// Editors on Windows write a byte order mark; Argo CD strips it too.
	data = bytes.TrimPrefix(data, utf8BOM)
	dec := json.NewDecoder(bytes.NewReader(data))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonError(file, data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &DecodeError{File: file, Line: lineAt(data, dec.InputOffset()), Err: errors.New("more than one JSON value: a .json manifest holds one object")}
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, &DecodeError{File: file, Line: 1, Err: errors.New("JSON value is not an object")}
	}
	if str(doc["kind"]) == "" {
		return nil, &DecodeError{File: file, Line: 1, Err: ErrNoKind}
	}
	if !isListKind(doc) {
		return []Object{{File: file, Line: 1, Doc: doc}}, nil
	}
	if doc["items"] == nil {
		return nil, nil
	}
	items, ok := doc["items"].([]any)
	if !ok {
		return nil, &DecodeError{File: file, Line: 1, Err: errors.New("items: want a list")}
	}
	out := make([]Object, 0, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok || str(m["kind"]) == "" {
			return nil, &DecodeError{File: file, Line: 1, Err: fmt.Errorf("items[%d]: want a Kubernetes object", i)}
		}
		out = append(out, Object{File: file, Line: 1, Doc: m})
	}
	return out, nil
}

var utf8BOM = []byte("\xef\xbb\xbf")

func jsonError(file string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &DecodeError{File: file, Line: lineAt(data, se.Offset), Err: err}
	case errors.As(err, &te):
		return &DecodeError{File: file, Line: lineAt(data, te.Offset), Err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &DecodeError{File: file, Line: lineAt(data, int64(len(data))), Err: errors.New("unexpected end of JSON")}
	}
	return &DecodeError{File: file, Err: err}
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// asMap returns v as a string-keyed map, or nil. YAML mappings with
// non-string keys cannot be Kubernetes objects and are treated as absent.
func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
