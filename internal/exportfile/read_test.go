package exportfile

import (
	"archive/tar"
	"bytes"
	"sort"
	"strings"
	"testing"
)

// tarOf makes a tar of files in sorted order (seeds must be the same bytes
// in every fuzzing process).
func tarOf(files map[string]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := files[n]
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
		tw.Write([]byte(c))
	}
	tw.Close()
	return b.Bytes()
}

// FuzzOpenExport feeds arbitrary files to the export reader: it must
// return an error or a fully verified export, never panic.
func FuzzOpenExport(f *testing.F) {
	f.Add(tarOf(map[string]string{ManifestName: `{"format":"ballast-export/v1"}`}))
	f.Add(tarOf(map[string]string{"../x": "y"}))
	f.Add(tarOf(map[string]string{"oci/index.json": `{"schemaVersion":2,"manifests":[]}`, ManifestName: `{}`}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		defer e.Close()
		if e.Bundle == nil || e.Bundle.Revision != e.Manifest.Revision {
			t.Fatal("accepted an export without a matching bundle")
		}
	})
}

func TestParseManifestErrors(t *testing.T) {
	sha := strings.Repeat("a", 40)
	dig := "sha256:" + strings.Repeat("b", 64)
	idx := `{"name":"oci/index.json","size":1,"sha256":"` + strings.Repeat("c", 64) + `"}`
	for _, tc := range []struct{ name, in, want string }{
		{"not json", "{", "ballast-export.json"},
		{"unknown field", `{"format":"ballast-export/v1","x":1}`, "unknown field"},
		{"format", `{"format":"v0"}`, "format"},
		{"revision", `{"format":"ballast-export/v1","revision":"abc"}`, "revision"},
		{"since", `{"format":"ballast-export/v1","revision":"` + sha + `","since":"x"}`, "since"},
		{"bundle", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"sha256:x"}`, "bundle digest"},
		{"repository", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"` + dig + `"}`, "repository"},
		{"traversal", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"` + dig + `","repository":"r","files":[{"name":"../x","size":1,"sha256":"` + strings.Repeat("c", 64) + `"}]}`, "bad name"},
		{"twice", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"` + dig + `","repository":"r","files":[` + idx + `,` + idx + `]}`, "twice"},
		{"no index", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"` + dig + `","repository":"r","files":[]}`, "index.json"},
		{"git missing", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"` + dig + `","repository":"r","git":true,"files":[` + idx + `]}`, "git bundle"},
		{"platform", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"` + dig + `","repository":"r","platforms":["x"],"files":[` + idx + `]}`, "platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
