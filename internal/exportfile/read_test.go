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
	oid := strings.Repeat("d", 64)
	f.Add(tarOf(map[string]string{"oci/index.json": `{"schemaVersion":2,"manifests":[]}`, "lfs/" + oid: "x", "git/deps/0.bundle": "# v2 git bundle\n",
		ManifestName: `{"format":"ballast-export/v2","revision":"` + strings.Repeat("a", 40) + `","bundle":"sha256:` + strings.Repeat("b", 64) +
			`","repository":"r","gitDeps":[{"url":"https://h/x.git","bundle":"git/deps/0.bundle","commits":["` + strings.Repeat("c", 40) + `"]}],` +
			`"lfs":[{"oid":"` + oid + `","size":1}],"files":[]}`}))
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
	oid := strings.Repeat("d", 64)
	v2 := `{"format":"ballast-export/v2","revision":"` + sha + `","bundle":"` + dig + `","repository":"r",`
	lfsFile := `{"name":"lfs/` + oid + `","size":1,"sha256":"` + oid + `"}`
	depFile := `{"name":"git/deps/0.bundle","size":1,"sha256":"` + strings.Repeat("c", 64) + `"}`
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
		{"v1 with lfs", `{"format":"ballast-export/v1","revision":"` + sha + `","bundle":"` + dig + `","repository":"r","lfs":[{"oid":"` + oid + `","size":1}],"files":[` + idx + `]}`, "has no gitDeps"},
		{"lfs unlisted", v2 + `"lfs":[{"oid":"` + oid + `","size":1}],"files":[` + idx + `]}`, "not listed"},
		{"lfs not its oid", v2 + `"lfs":[{"oid":"` + oid + `","size":1}],"files":[` + idx + `,{"name":"lfs/` + oid + `","size":1,"sha256":"` + strings.Repeat("e", 64) + `"}]}`, "want the oid"},
		{"lfs size", v2 + `"lfs":[{"oid":"` + oid + `","size":2}],"files":[` + idx + `,` + lfsFile + `]}`, "want the oid"},
		{"lfs bad oid", v2 + `"lfs":[{"oid":"xyz","size":1}],"files":[` + idx + `]}`, "bad or repeated oid"},
		{"lfs twice", v2 + `"lfs":[{"oid":"` + oid + `","size":1},{"oid":"` + oid + `","size":1}],"files":[` + idx + `,` + lfsFile + `]}`, "bad or repeated oid"},
		{"stray lfs file", v2 + `"files":[` + idx + `,` + lfsFile + `]}`, "no lfs object"},
		{"dep url", v2 + `"gitDeps":[{"url":"-uevil","bundle":"git/deps/0.bundle","commits":["` + sha + `"]}],"files":[` + idx + `,` + depFile + `]}`, "not a normalized git URL"},
		{"dep bundle name", v2 + `"gitDeps":[{"url":"https://h/x.git","bundle":"oci/index.json","commits":["` + sha + `"]}],"files":[` + idx + `]}`, "bundle"},
		{"dep bundle unlisted", v2 + `"gitDeps":[{"url":"https://h/x.git","bundle":"git/deps/0.bundle","commits":["` + sha + `"]}],"files":[` + idx + `]}`, "not a listed"},
		{"dep no commits", v2 + `"gitDeps":[{"url":"https://h/x.git","bundle":"git/deps/0.bundle","commits":[]}],"files":[` + idx + `,` + depFile + `]}`, "no commits"},
		{"dep commit", v2 + `"gitDeps":[{"url":"https://h/x.git","bundle":"git/deps/0.bundle","commits":["HEAD"]}],"files":[` + idx + `,` + depFile + `]}`, "not a full commit SHA"},
		{"dep prerequisite", v2 + `"gitDeps":[{"url":"https://h/x.git","bundle":"git/deps/0.bundle","commits":["` + sha + `"],"prerequisites":["x"]}],"files":[` + idx + `,` + depFile + `]}`, "not a full commit SHA"},
		{"stray dep file", v2 + `"files":[` + idx + `,` + depFile + `]}`, "no gitDeps bundle"},
		{"newer format", `{"format":"ballast-export/v3"}`, "newer ballast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseManifestV2(t *testing.T) {
	sha := strings.Repeat("a", 40)
	oid := strings.Repeat("d", 64)
	raw := `{"format":"ballast-export/v2","revision":"` + sha + `","bundle":"sha256:` + strings.Repeat("b", 64) + `","repository":"r",` +
		`"gitDeps":[{"url":"https://h/x.git","bundle":"git/deps/0.bundle","commits":["` + sha + `"],"prerequisites":["` + strings.Repeat("f", 40) + `"]}],` +
		`"lfs":[{"oid":"` + oid + `","size":7}],"files":[{"name":"oci/index.json","size":1,"sha256":"` + strings.Repeat("c", 64) + `"},` +
		`{"name":"git/deps/0.bundle","size":9,"sha256":"` + strings.Repeat("c", 64) + `"},{"name":"lfs/` + oid + `","size":7,"sha256":"` + oid + `"}]}`
	m, err := ParseManifest([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.GitDeps) != 1 || m.GitDeps[0].Prerequisites[0] != strings.Repeat("f", 40) || len(m.LFS) != 1 || m.LFS[0].Size != 7 {
		t.Fatalf("parsed %+v", m)
	}
}

// FuzzParseManifest feeds arbitrary manifests to the parser: an error or a
// manifest whose v2 parts hold together, never a panic.
func FuzzParseManifest(f *testing.F) {
	sha := strings.Repeat("a", 40)
	oid := strings.Repeat("d", 64)
	f.Add([]byte(`{"format":"ballast-export/v1"}`))
	f.Add([]byte(`{"format":"ballast-export/v2","revision":"` + sha + `","bundle":"sha256:` + strings.Repeat("b", 64) + `","repository":"r",` +
		`"gitDeps":[{"url":"https://h/x.git","bundle":"git/deps/0.bundle","commits":["` + sha + `"]}],` +
		`"lfs":[{"oid":"` + oid + `","size":7}],"files":[{"name":"oci/index.json","size":1,"sha256":"` + strings.Repeat("c", 64) + `"},` +
		`{"name":"git/deps/0.bundle","size":9,"sha256":"` + strings.Repeat("c", 64) + `"},{"name":"lfs/` + oid + `","size":7,"sha256":"` + oid + `"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseManifest(raw)
		if err != nil {
			return
		}
		files := map[string]File{}
		for _, x := range m.Files {
			files[x.Name] = x
		}
		for _, o := range m.LFS {
			if fl, ok := files[LFSName(o.OID)]; !ok || fl.SHA256 != o.OID || fl.Size != o.Size {
				t.Fatalf("accepted LFS object %s without a matching file", o.OID)
			}
		}
		for _, g := range m.GitDeps {
			if _, ok := files[g.Bundle]; !ok || len(g.Commits) == 0 {
				t.Fatalf("accepted gitDeps %+v", g)
			}
		}
	})
}
