package images

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeYAML(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		kinds []string // kind/name of each object
		lines []int
	}{
		{"empty", "", nil, nil},
		{"comments and separators only", "# nothing\n---\n---\n", nil, nil},
		{"one object", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", []string{"Service/s"}, []int{1}},
		{"multi-document with leading separator", "---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n# comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n...\n",
			[]string{"Service/a", "ConfigMap/b"}, []int{2, 7}},
		{"null document between", "kind: A\nmetadata: {name: a}\n--- null\n---\nkind: B\nmetadata: {name: b}\n", []string{"A/a", "B/b"}, []int{1, 5}},
		{"List kind", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n- kind: Service\n  metadata: {name: s}\n",
			[]string{"Pod/p", "Service/s"}, []int{4, 7}},
		{"typed list", "apiVersion: v1\nkind: PodList\nitems:\n- kind: Pod\n  metadata: {name: p}\n", []string{"Pod/p"}, []int{4}},
		{"null list", "apiVersion: v1\nkind: ConfigMapList\nitems: null\n", nil, nil},
		{"nested List", "kind: List\nitems:\n- kind: List\n  items:\n  - kind: Pod\n    metadata: {name: deep}\n", []string{"Pod/deep"}, []int{5}},
		{"kind ending in List without items is an object", "kind: AllowList\nmetadata: {name: w}\nspec: {}\n", []string{"AllowList/w"}, []int{1}},
		{"JSON in a .yaml file", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"}}`, []string{"Pod/j"}, []int{1}},
		{"anchors and merge keys", "kind: Pod\nmetadata: &m {name: anch}\nspec:\n  containers:\n  - &c {name: a, image: nginx}\n  - <<: *c\n    name: b\n", []string{"Pod/anch"}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := DecodeYAML("f.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != len(tt.kinds) {
				t.Fatalf("got %d objects, want %d", len(objs), len(tt.kinds))
			}
			for i, o := range objs {
				if got := o.Kind() + "/" + o.Name(); got != tt.kinds[i] || o.Line != tt.lines[i] || o.File != "f.yaml" {
					t.Errorf("object %d: %s line %d, want %s line %d", i, got, o.Line, tt.kinds[i], tt.lines[i])
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, file, src string
		line            int
		want            string
		noKind          bool
	}{
		{"bad indentation", "f.yaml", "kind: Pod\nmetadata:\n  name: a\n name: b\n", 3, "", false},
		{"bad second document", "f.yaml", "kind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: [\n", 5, "", false},
		{"tab indentation", "f.yaml", "kind: Pod\nmetadata:\n\tname: a\n", 3, "", false},
		{"duplicate key", "f.yaml", "kind: Pod\nkind: Service\n", 2, "already defined", false},
		{"scalar document", "f.yaml", "---\njust text\n", 2, "document is a scalar", false},
		{"list document", "f.yaml", "- a\n- b\n", 1, "document is a list", false},
		{"no kind", "values.yaml", "image:\n  repository: nginx\n", 1, "document has no kind", true},
		{"List items not a list", "f.yaml", "kind: List\nitems: {a: b}\n", 2, "want a list", false},
		{"List item without kind", "f.yaml", "kind: List\nitems:\n- metadata: {name: x}\n", 3, "no kind", true},
		{"JSON syntax", "f.json", "{\n  \"kind\": \"Pod\",\n  \"metadata\": {\"name\": }\n}", 3, "invalid character", false},
		{"JSON two values", "f.json", "{\"kind\":\"Pod\"}\n{\"kind\":\"Pod\"}\n", 2, "more than one JSON value", false},
		{"JSON truncated", "f.json", "{\"kind\":\"Pod\",\n", 2, "unexpected end", false},
		{"JSON array", "f.json", "[1]", 1, "not an object", false},
		{"JSON without kind", "f.json", "{\"a\": 1}", 1, "no kind", true},
		{"JSON empty", "f.json", "", 1, "unexpected end", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.file, []byte(tt.src))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want a *DecodeError", err, err)
			}
			if de.File != tt.file || de.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q (line %d), want %s line %d containing %q", err, de.Line, tt.file, tt.line, tt.want)
			}
			if errors.Is(err, ErrNoKind) != tt.noKind {
				t.Errorf("errors.Is(ErrNoKind) = %v, want %v", !tt.noKind, tt.noKind)
			}
		})
	}
}

func TestDecodeKeepsObjectsBeforeError(t *testing.T) {
	objs, err := DecodeYAML("f.yaml", []byte("kind: Pod\nmetadata: {name: a}\n---\n: : :\n"))
	if err == nil || len(objs) != 1 {
		t.Fatalf("got %d objects, error %v; want 1 object and an error", len(objs), err)
	}
}

func TestDecodeByteOrderMark(t *testing.T) {
	for _, name := range []string{"bom.json", "bom.yaml"} {
		src := "\xef\xbb\xbf{\"kind\":\"Pod\",\"metadata\":{\"name\":\"b\"}}"
		objs, err := Decode(name, []byte(src))
		if err != nil || len(objs) != 1 || objs[0].Name() != "b" {
			t.Errorf("%s: got %+v, %v", name, objs, err)
		}
	}
	occ, err := ParseList("l.txt", []byte("\xef\xbb\xbfnginx\n"))
	if err != nil || len(occ) != 1 {
		t.Errorf("list with BOM: %+v, %v", occ, err)
	}
}

func TestDecodeJSONList(t *testing.T) {
	objs, err := Decode("l.json", []byte(`{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"a"}},{"kind":"Pod","metadata":{"name":"b"}}]}`))
	if err != nil || len(objs) != 2 || objs[1].Name() != "b" {
		t.Fatalf("got %+v, %v", objs, err)
	}
}
