package sneakernet_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/exportfile"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

var anon = registryclient.WithKeychain(authn.NewMultiKeychain())

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// world is an upstream registry with bundles of two revisions (the second
// adds one image), the git repository, and an empty edge.
type world struct {
	up, edge   *regserver.Server
	repo       string // git checkout
	edgeGit    string // bare repository at the edge
	sha1, sha2 string
	bundles    string
	newImage   int64 // blob bytes of the image added in sha2
}

func pushImage(t *testing.T, s *regserver.Server, repo string, layerSize int64) int64 {
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 2, layerSize)
	ref, _ := name.ParseReference(s.Repo(repo), name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	var n int64
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		img, _ := idx.Image(m.Digest)
		man, _ := img.Manifest()
		n += man.Config.Size
		for _, l := range man.Layers {
			n += l.Size
		}
	}
	return n
}

func bundleRev(t *testing.T, w *world, extra ...string) string {
	t.Helper()
	git(t, w.repo, "commit", "-q", "--allow-empty", "-m", "rev")
	res, err := release.Run(context.Background(), release.Options{
		RepoDir: w.repo, Revision: "HEAD", To: w.up.Repo(w.bundles),
		Config: &release.Config{ExtraImages: extra}, RemoteOptions: []registryclient.Option{anon},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Revision
}

func newWorld(t *testing.T) *world {
	w := &world{up: regserver.Start(t, regserver.Options{}), edge: regserver.Start(t, regserver.Options{Auth: true}),
		repo: t.TempDir(), edgeGit: t.TempDir(), bundles: "fleet/apps-bundles"}
	pushImage(t, w.up, "src/web:1", 96<<10)
	pushImage(t, w.up, "src/db:2", 64<<10)
	git(t, w.repo, "init", "-q", "-b", "main")
	git(t, w.repo, "remote", "add", "origin", "https://git.example.com/fleet/apps.git")
	w.sha1 = bundleRev(t, w, w.up.Repo("src/web:1"), w.up.Repo("src/db:2"))
	w.newImage = pushImage(t, w.up, "src/cache:3", 80<<10)
	w.sha2 = bundleRev(t, w, w.up.Repo("src/web:1"), w.up.Repo("src/db:2"), w.up.Repo("src/cache:3"))
	git(t, w.edgeGit, "init", "-q", "--bare")
	return w
}

func (w *world) export(t *testing.T, sha, since string) (string, *sneakernet.ExportResult) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "site-update.tar")
	res, err := sneakernet.Export(context.Background(), sneakernet.ExportOptions{
		Bundle: w.up.Repo(w.bundles) + ":" + sha, GitDir: w.repo, Output: out, Since: since,
		RemoteOptions: []registryclient.Option{anon},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

func (w *world) importFile(file string) (*sneakernet.ImportResult, error) {
	return sneakernet.Import(context.Background(), sneakernet.ImportOptions{
		File: file, Registry: w.edge.Addr, GitDir: w.edgeGit,
		// As the CLI does: Debian's docker-registry (Distribution 2.8)
		// answers a mount without from with an upload session, which the
		// upload then uses.
		RemoteOptions: []registryclient.Option{registryclient.WithAuth(&authn.Basic{Username: w.edge.User, Password: w.edge.Password}), registryclient.WithMountAnywhere(true)},
	})
}

// complete checks the edge has the revision's bundle, in the edge layout.
func (w *world) complete(t *testing.T, sha string) *bundle.Report {
	t.Helper()
	p := registryclient.NewPresence(w.edge.Addr, registryclient.WithAuth(&authn.Basic{Username: w.edge.User, Password: w.edge.Password}))
	br, _ := imageref.BundleRepository("https://git.example.com/fleet/apps.git")
	r, err := bundle.CheckComplete(context.Background(), p, bundle.Placement{BundleRepo: br, ImageRepo: imageref.Ref.EdgeRepository, CheckTags: true}, sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// catalog lists the edge registry's repositories: empty means untouched.
func (w *world) catalog(t *testing.T) string {
	req, _ := http.NewRequest("GET", "http://"+w.edge.Addr+"/v2/_catalog", nil)
	req.SetBasicAuth(w.edge.User, w.edge.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestExportImportRoundTripAndIncremental(t *testing.T) {
	w := newWorld(t)
	full, fres := w.export(t, w.sha1, "")
	if fres.GitBytes == 0 || fres.BlobBytes == 0 {
		t.Fatalf("export: %+v", fres)
	}
	res, err := w.importFile(full)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Git || res.Images != 2 {
		t.Fatalf("import: %+v", res)
	}
	if r := w.complete(t, w.sha1); !r.Complete() {
		t.Fatalf("edge bundle incomplete: %v", r.Missing)
	}
	// The git bundle holds the refs as they were at export time.
	git(t, w.edgeGit, "cat-file", "-e", w.sha1+"^{commit}")
	// Importing again changes nothing and moves nothing.
	res, err = w.importFile(full)
	if err != nil || res.Stats.BytesWritten != 0 {
		t.Fatalf("re-import: %v %+v", err, res)
	}

	// Incremental: only the new image's blobs.
	inc, ires := w.export(t, w.sha2, w.sha1)
	if ires.Stats.BytesWritten != w.newImage {
		t.Fatalf("incremental export holds %d blob bytes, want the new image's %d", ires.Stats.BytesWritten, w.newImage)
	}
	t.Logf("full export %d bytes, incremental %d bytes", fres.Bytes, ires.Bytes)
	if _, err := w.importFile(inc); err != nil {
		t.Fatal(err)
	}
	if r := w.complete(t, w.sha2); !r.Complete() {
		t.Fatalf("edge bundle 2 incomplete: %v", r.Missing)
	}
	if got := git(t, w.edgeGit, "rev-parse", "refs/heads/main"); got != w.sha2 {
		t.Fatalf("edge git main = %s, want %s", got, w.sha2)
	}
}

// rewrite copies a tar, letting edit change each entry's header and data.
func rewrite(t *testing.T, in string, edit func(h *tar.Header, data []byte) (*tar.Header, []byte)) string {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		h, data = edit(h, data)
		if h == nil {
			continue
		}
		h.Size = int64(len(data))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
			data = nil
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	out := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportRejectsBadFiles(t *testing.T) {
	w := newWorld(t)
	good, _ := w.export(t, w.sha1, "")
	raw, _ := os.ReadFile(good)
	firstBlob := true
	cases := map[string]struct {
		file string
		want string
	}{
		"corrupted blob": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if strings.Contains(h.Name, "blobs/sha256/") && len(d) > 1000 && firstBlob {
				firstBlob = false
				d[500] ^= 1
			}
			return h, d
		}), "corrupted"},
		"truncated": {writeTemp(t, raw[:len(raw)/2]), "truncated"},
		"traversal": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if h.Name == exportfile.GitBundle {
				h.Name = "../../etc/evil"
			}
			return h, d
		}), ".. refused"},
		"absolute": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if h.Name == exportfile.GitBundle {
				h.Name = "/tmp/evil"
			}
			return h, d
		}), "absolute path"},
		"symlink": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if h.Name == exportfile.GitBundle {
				h.Typeflag, h.Linkname = tar.TypeSymlink, "/etc/passwd"
			}
			return h, d
		}), "refused"},
		"device": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if h.Name == exportfile.GitBundle {
				h.Typeflag = tar.TypeChar
			}
			return h, d
		}), "refused"},
		"extra file": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if h.Name == exportfile.GitBundle {
				h.Name = "git/other.bundle"
			}
			return h, d
		}), "not listed"},
		"no manifest": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if h.Name == exportfile.ManifestName {
				return nil, nil
			}
			return h, d
		}), "not a ballast export"},
		"tampered manifest": {rewrite(t, good, func(h *tar.Header, d []byte) (*tar.Header, []byte) {
			if h.Name == exportfile.ManifestName {
				d = bytes.Replace(d, []byte(w.sha1), []byte(strings.Repeat("a", 40)), 1)
			}
			return h, d
		}), "bundle index"},
		"not a tar": {writeTemp(t, []byte("hello")), "tar"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := w.importFile(tc.file)
			if err == nil || !errors.Is(err, sneakernet.ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want bad input mentioning %q", err, tc.want)
			}
		})
	}
	if c := w.catalog(t); !strings.Contains(c, `"repositories":[]`) {
		t.Fatalf("edge registry changed: %s", c)
	}
	if out := git(t, w.edgeGit, "for-each-ref"); out != "" {
		t.Fatalf("edge git changed: %s", out)
	}
	// An incremental file for a site that lacks the base is refused
	// before anything is written.
	inc, _ := w.export(t, w.sha2, w.sha1)
	if _, err := w.importFile(inc); err == nil || !errors.Is(err, sneakernet.ErrInput) {
		t.Fatalf("incremental onto an empty edge: %v", err)
	}
	if c := w.catalog(t); !strings.Contains(c, `"repositories":[]`) {
		t.Fatalf("edge registry changed: %s", c)
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "f.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A gated mirror repository serves refs/heads/ only once ready: an import
// puts the branches under the hidden upstream namespace and lets the edge
// daemon move the served branch when it sees the bundle complete.
func TestImportIntoGatedMirror(t *testing.T) {
	w := newWorld(t)
	git(t, w.edgeGit, "config", "ballast.gated", "true")
	full, _ := w.export(t, w.sha1, "")
	if _, err := w.importFile(full); err != nil {
		t.Fatal(err)
	}
	// The git bundle holds the branches as they were at export time.
	if got, want := git(t, w.edgeGit, "rev-parse", "refs/ballast/upstream/heads/main"), git(t, w.repo, "rev-parse", "main"); got != want {
		t.Errorf("hidden upstream main = %s, want %s", got, want)
	}
	if got := git(t, w.edgeGit, "for-each-ref", "refs/heads/"); got != "" {
		t.Errorf("import wrote served branches of a gated repository:\n%s", got)
	}
}
