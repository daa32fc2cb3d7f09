package images

import (
	"errors"
	"testing"
)

// FuzzDecodeExtract: random YAML or JSON never panics; every failure is a
// *DecodeError or an extraction error, and every extracted reference is
// normalized.
func FuzzDecodeExtract(f *testing.F) {
	for _, s := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: nginx:1.27.1}]\n",
		"kind: List\nitems:\n- kind: Pod\n  metadata: {name: p}\n  spec: {initContainers: [{image: 'localhost:5000/x@sha256:0000000000000000000000000000000000000000000000000000000000000000'}], containers: [{image: redis}]}\n",
		"---\nkind: Rollout\nspec: {template: {spec: {containers: [{image: a}], ephemeralContainers: [{image: b}]}}}\n---\n",
		"kind: CronJob\napiVersion: batch/v1\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{image: [1]}]}}}}}",
		"a: &a [*a]\n",
		`{"kind":"Pod","spec":{"containers":[{"image":"nginx"}]}}`,
		"kind: X\nx: !!binary aGVsbG8=\ny: 2001-12-14\n? [a, b]\n: c\n",
	} {
		f.Add(s, false)
	}
	f.Add(`{"kind":"List","items":[{"kind":"Pod","spec":{"containers":[{"image":"nginx"}]}}]}`, true)
	f.Fuzz(func(t *testing.T, src string, asJSON bool) {
		name := "fuzz.yaml"
		if asJSON {
			name = "fuzz.json"
		}
		objs, err := Decode(name, []byte(src))
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("decode error %v is a %T, want *DecodeError", err, err)
			}
		}
		for _, o := range objs {
			occ, err := Extract(o)
			if err != nil {
				continue
			}
			for _, x := range occ {
				if x.Ref.Registry == "" || x.Ref.Repository == "" || (x.Ref.Tag == "" && x.Ref.Digest == "") {
					t.Fatalf("unnormalized reference %+v from %q", x.Ref, x.Raw)
				}
			}
		}
	})
}

// FuzzParseList: random extra-image lists never panic and yield only
// normalized references.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"nginx\n# comment\nghcr.io/a/b:1 # trailing\n",
		"localhost:5000/x@sha256:0000000000000000000000000000000000000000000000000000000000000000\r\n",
		"a b\n", "\x00\n", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		occ, err := ParseList("extra.txt", []byte(src))
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Line == 0 {
				t.Fatalf("error %v: want *DecodeError with a line", err)
			}
			return
		}
		for _, x := range occ {
			if x.Ref.String() == "" || x.Location.Line == 0 {
				t.Fatalf("bad occurrence %+v", x)
			}
		}
	})
}
