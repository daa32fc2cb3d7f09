package render_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/render"
)

// A remote base's tree is read only inside its repository: a local base
// that climbs out with "..", or a kustomization that is a symbolic link
// to a file outside, is an error; inside, nested local bases are
// followed.
func TestRemoteBasesWithin(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "kustomization.yaml"), "resources:\n- https://git.example.com/secret/base//x?ref=v1\n")
	write(filepath.Join(root, "ok", "kustomization.yaml"), "resources:\n- inner\n")
	write(filepath.Join(root, "ok", "inner", "kustomization.yaml"), "resources:\n- https://git.example.com/org/inner//deploy?ref=main\n")
	got, err := render.RemoteBasesWithin(filepath.Join(root, "ok"), root)
	if err != nil || len(got) != 1 || got[0].Ref != "main" {
		t.Fatalf("inside the repository: %+v, %v", got, err)
	}
	rel, err := filepath.Rel(filepath.Join(root, "climb"), outside)
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(root, "climb", "kustomization.yaml"), "resources:\n- "+rel+"\n")
	if _, err := render.RemoteBasesWithin(filepath.Join(root, "climb"), root); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("a local base climbing out: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "link"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "kustomization.yaml"), filepath.Join(root, "link", "kustomization.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := render.RemoteBasesWithin(filepath.Join(root, "link"), root); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("a kustomization linking outside: %v", err)
	}
	// Without a root (the app's own checkout) local bases go anywhere.
	if got, err := render.RemoteBases(filepath.Join(root, "climb")); err != nil || len(got) != 1 {
		t.Fatalf("RemoteBases without a root: %+v, %v", got, err)
	}
}

// FuzzRemoteBasesWithin: a remote base's kustomization is outside input
// (another repository's file): any content is an error or a list, never
// a panic, and nothing outside the tree is read.
func FuzzRemoteBasesWithin(f *testing.F) {
	f.Add("resources:\n- https://git.example.com/org/base//deploy?ref=main\n- local\n")
	f.Add("bases: [../../..]\ncomponents: [git@github.com:org/repo.git/x?ref=-u]\n")
	f.Add("resources: {a: b}\n")
	f.Fuzz(func(t *testing.T, k string) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = render.RemoteBasesWithin(root, root)
	})
}
