package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/ocitar"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

func bundleGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func bundleWriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fixture is a git repository whose apps use multi-arch images pushed to a
// real registry.
type bundleFixture struct {
	reg  *regserver.Server
	repo string
	sha  string
	want map[string]v1.Hash // image ref (as bundled) -> digest
}

func newBundleFixture(t *testing.T) *bundleFixture {
	t.Helper()
	reg := regserver.Start(t, regserver.Options{})
	f := &bundleFixture{reg: reg, repo: t.TempDir(), want: map[string]v1.Hash{}}
	push := func(repo, tag string, platforms []string) v1.Hash {
		idx := testimage.Index(t, platforms, 2, 48<<10)
		ref, _ := name.ParseReference(reg.Repo(repo)+":"+tag, name.Insecure)
		if err := remote.WriteIndex(ref, idx); err != nil {
			t.Fatal(err)
		}
		h, _ := idx.Digest()
		return h
	}
	web := push("src/web", "1.0", []string{"linux/amd64", "linux/arm64"})
	db := push("src/db", "2", []string{"linux/amd64", "linux/arm64", "linux/arm/v7"})
	tool := push("src/tool", "3", []string{"linux/amd64"})
	f.want[reg.Repo("src/web")+":1.0"] = web
	f.want[reg.Repo("src/db")+"@"+db.String()] = db
	f.want[reg.Repo("src/tool")+":3"] = tool
	bundleWriteFiles(t, f.repo, map[string]string{
		"apps/web/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: ` + reg.Repo("src/db") + "@" + db.String() + `
      containers:
        - name: web
          image: ` + reg.Repo("src/web") + `:1.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data: {image: "not-a-container"}
`,
		"argocd/web.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec:\n  source: {path: apps/web}\n",
		"ballast.yaml":    "apps:\n  - application: argocd/web.yaml\nextraImages:\n  - " + reg.Repo("src/tool") + ":3\n",
	})
	bundleGit(t, f.repo, "init", "-q", "-b", "main")
	bundleGit(t, f.repo, "add", ".")
	bundleGit(t, f.repo, "commit", "-q", "-m", "apps")
	bundleGit(t, f.repo, "remote", "add", "origin", "https://user:secret@git.example.com/Fleet/Apps.git")
	f.sha = bundleGit(t, f.repo, "rev-parse", "HEAD")
	return f
}

func runBundle(t *testing.T, args ...string) (*release.Result, string, int) {
	t.Helper()
	out, errOut, code := runCLI(t, append([]string{"bundle", "-o", "json"}, args...)...)
	if code != 0 {
		return nil, errOut, code
	}
	var r release.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bundle -o json: %v: %s", err, out)
	}
	return &r, errOut, code
}

func TestBundleToRegistry(t *testing.T) {
	f := newBundleFixture(t)
	to := f.reg.Repo("fleet/apps-bundles")
	r, errOut, code := runBundle(t, "--repo", f.repo, "--to", to)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if r.Revision != f.sha || r.Source != "https://git.example.com/Fleet/Apps.git" || len(r.Images) != 3 {
		t.Fatalf("result %+v", r)
	}
	if r.Stats.BlobsCopied+r.Stats.BlobsMounted != 18 || r.Stats.ManifestsWritten != 10 {
		t.Fatalf("nothing copied: %+v", r.Stats)
	}
	// Read the bundle back: every reference, digest and platform.
	ctx := context.Background()
	p := registryclient.NewPresence(f.reg.Addr, registryclient.WithKeychain(authn.NewMultiKeychain()))
	rep, err := bundle.CheckComplete(ctx, p, bundle.Placement{BundleRepo: "fleet/apps-bundles"}, f.sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() {
		t.Fatalf("bundle incomplete: %v", rep.Missing)
	}
	got := map[string]v1.Hash{}
	for _, im := range rep.Bundle.Images {
		got[im.Ref.String()] = im.Descriptor.Digest
	}
	for ref, d := range f.want {
		if got[ref] != d {
			t.Errorf("image %s: bundled %s, want %s (bundle has %v)", ref, got[ref], d, got)
		}
	}
	if rep.Bundle.Source != r.Source || rep.Bundle.Revision != f.sha {
		t.Fatalf("annotations: %+v", rep.Bundle)
	}
	// Every platform child is in the bundles repository.
	src, _ := registryclient.New(to, registryclient.WithKeychain(authn.NewMultiKeychain()))
	for _, im := range rep.Bundle.Images {
		raw, err := src.FetchManifest(ctx, im.Descriptor)
		if err != nil {
			t.Fatal(err)
		}
		ms, _, _ := oci.Children(raw, im.Descriptor.MediaType, nil)
		for _, m := range ms {
			if ok, _ := src.ManifestExists(ctx, m); !ok || m.Platform == nil || m.Platform.OS != "linux" {
				t.Fatalf("child %s (%v) missing", m.Digest, m.Platform)
			}
		}
	}

	// Idempotent: a re-run copies and writes nothing.
	r2, errOut, code := runBundle(t, "--repo", f.repo, "--to", to)
	if code != 0 {
		t.Fatalf("re-run exit %d: %s", code, errOut)
	}
	if r2.BundleDigest != r.BundleDigest || r2.Stats.BytesRead != 0 || r2.Stats.BlobsCopied != 0 || r2.Stats.ManifestsWritten != 0 {
		t.Fatalf("re-run moved content: %+v", r2.Stats)
	}

	// Dry run against the registry: everything present.
	r3, _, code := runBundle(t, "--repo", f.repo, "--to", to, "--dry-run")
	if code != 0 || !r3.DryRun || r3.Plan == nil || r3.Plan.MissingBytes != 0 {
		t.Fatalf("dry run: %d %+v", code, r3)
	}
}

func TestBundleToLayoutAndTar(t *testing.T) {
	f := newBundleFixture(t)
	out := filepath.Join(t.TempDir(), "bundle.tar")
	lay := filepath.Join(t.TempDir(), "layout")
	// Issue 11 §5: the amd64-only tool image has nothing for linux/arm64:
	// an error that names what it has, not a bundle that would count as
	// complete without the image.
	_, errOut, code := runBundle(t, "--repo", f.repo, "--oci-layout", lay, "--platform", "linux/arm64")
	if code != 1 || !strings.Contains(errOut, "no manifest for linux/arm64 in index sha256:") || !strings.Contains(errOut, "it has linux/amd64") {
		t.Fatalf("--platform linux/arm64 with an amd64-only image: exit %d: %s", code, errOut)
	}
	if _, err := mustLayout(layout.New(lay)).Resolve(context.Background(), f.sha); !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("a bundle was tagged although an image has nothing for the selection: %v", err)
	}
	// arm64 written as Docker Hub does (v8) selects the fixture's arm64
	// entries, which have no variant (as buildx writes them).
	r, errOut, code := runBundle(t, "--repo", f.repo, "--oci-layout", lay, "--output", out, "--platform", "linux/arm64/v8,linux/amd64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ctx := context.Background()
	a, err := ocitar.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, l := range []*layout.Layout{layout.Tar(a, ""), mustLayout(layout.New(lay))} {
		d, err := l.Resolve(ctx, f.sha)
		if err != nil || d.Digest.String() != r.BundleDigest {
			t.Fatalf("bundle tag: %v %v", d, err)
		}
		raw, _ := l.FetchManifest(ctx, d)
		b, err := bundle.Parse(raw)
		if err != nil || len(b.Images) != 3 {
			t.Fatalf("bundle: %v", err)
		}
		// Every entry hints the blobs it reaches for the selection (all in
		// the layout, none of db's arm/v7), each once.
		hints, err := bundle.BlobHints(b)
		if err != nil {
			t.Fatalf("blob hints: %v", err)
		}
		sel, _ := oci.ParsePlatforms("linux/arm64/v8,linux/amd64")
		for i, im := range b.Images {
			reached := map[string]bool{}
			if err := oci.Walk(ctx, l, im.Descriptor, sel, func(n oci.Node) error {
				if n.Raw == nil {
					reached[n.Descriptor.Digest.String()] = true
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(hints[i]) != len(reached) {
				t.Fatalf("%s: %d blobs hinted, %d reached", im.Ref, len(hints[i]), len(reached))
			}
			for _, h := range hints[i] {
				if !reached[h.Digest.String()] || slices.Contains(h.Platforms, "linux/arm/v7") {
					t.Fatalf("%s: hint %+v is not a reached blob of the selection", im.Ref, h)
				}
			}
		}
		// arm64 and amd64 only: db's arm/v7 stays behind.
		for _, im := range b.Images {
			raw, err := l.FetchManifest(ctx, im.Descriptor)
			if err != nil {
				t.Fatal(err)
			}
			ms, _, _ := oci.Children(raw, im.Descriptor.MediaType, nil)
			for _, m := range ms {
				ok, _ := l.ManifestExists(ctx, m)
				if ok != (m.Platform.Architecture != "arm") {
					t.Fatalf("%s %s present=%v", im.Ref, m.Platform, ok)
				}
			}
		}
	}
}

func mustLayout[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestBundleBadInput(t *testing.T) {
	f := newBundleFixture(t)
	to := f.reg.Repo("fleet/bad")
	bundleWriteFiles(t, f.repo, map[string]string{"ballast.yaml": "apps:\n  - path: apps/web\n    typo: 1\n"})
	bundleGit(t, f.repo, "commit", "-qam", "bad config")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad ballast.yaml", []string{"--repo", f.repo, "--to", to}, `unknown field "typo"`},
		{"no target", []string{"--repo", f.repo}, "nowhere to write"},
		{"bad revision", []string{"--repo", f.repo, "--to", to, "--revision", "nope"}, "revision"},
		{"bad image flag", []string{"--repo", f.repo, "--to", to, "--extra-images", "Bad Image"}, "extraImages"},
		{"bad platform", []string{"--repo", f.repo, "--to", to, "--path", "apps/web", "--platform", "linux"}, "platform"},
		{"traversal path", []string{"--repo", f.repo, "--to", to, "--path", "../x"}, "leaves the repository"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, append([]string{"bundle"}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q, want 2 and %q", code, errOut, tc.want)
			}
		})
	}
	// Nothing was pushed.
	r, _ := registryclient.New(to, registryclient.WithKeychain(authn.NewMultiKeychain()))
	sha := bundleGit(t, f.repo, "rev-parse", "HEAD")
	if _, err := r.Resolve(context.Background(), sha); err == nil {
		t.Fatal("a bundle was pushed despite bad input")
	}
	// A missing image is an operation failure (exit 1), and no index.
	_, errOut, code := runCLI(t, "bundle", "--repo", f.repo, "--to", to, "--extra-images", f.reg.Repo("src/nothing")+":1")
	if code != 1 || !strings.Contains(errOut, "src/nothing") {
		t.Fatalf("missing image: exit %d %q", code, errOut)
	}
}

// TestBundleToAuthRegistry pushes to a registry that needs credentials,
// read from the docker config as other OCI tools do, and copies every byte
// (no mounts across registries).
func TestBundleToAuthRegistry(t *testing.T) {
	f := newBundleFixture(t)
	dst := regserver.Start(t, regserver.Options{Auth: true})
	to := dst.Repo("fleet/apps-bundles")
	if _, errOut, code := runCLI(t, "bundle", "--repo", f.repo, "--to", to); code != 1 || !strings.Contains(errOut, "401") {
		t.Fatalf("without credentials: exit %d %s", code, errOut)
	}
	cfg := t.TempDir()
	os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+dst.Addr+`":{"auth":"`+
		base64.StdEncoding.EncodeToString([]byte(dst.User+":"+dst.Password))+`"}}}`), 0o600)
	t.Setenv("DOCKER_CONFIG", cfg)
	r, errOut, code := runBundle(t, "--repo", f.repo, "--to", to)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if r.Stats.BlobsCopied != 18 || r.Stats.BlobsMounted != 0 || r.BytesNew != r.Stats.BytesRead {
		t.Fatalf("stats %+v", r.Stats)
	}
	p := registryclient.NewPresence(dst.Addr)
	rep, err := bundle.CheckComplete(context.Background(), p, bundle.Placement{BundleRepo: "fleet/apps-bundles"}, f.sha, nil)
	if err != nil || !rep.Complete() {
		t.Fatalf("bundle incomplete: %v %v", err, rep)
	}
}
