package site_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/exportfile"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/verify"
)

// depsWorld is the connected side of a release whose revision has a
// submodule, a remote Kustomize base and an LFS file: git upstreams served
// by git http-backend, an LFS upstream (lfs-test-server), a bundles
// registry (Debian's docker-registry).
type depsWorld struct {
	t        testing.TB
	git      *gitserver.Server
	lfsUp    *lfsserver.Server
	up       *regserver.Server
	apps     *gitserver.Repo
	appsURL  string
	lib, bas *gitserver.Repo
	blob     []byte // the LFS file's content
	libSHA   string
	baseSHA  string
}

func newDepsWorld(t testing.TB) *depsWorld {
	gitserver.RequireGit(t)
	realtest.LookPath(t, "git-lfs", "apt-get install git-lfs")
	w := &depsWorld{t: t, git: gitserver.New(t), lfsUp: lfsserver.New(t), up: regserver.Start(t, regserver.Options{})}
	w.lib = w.git.CreateRepo(t, "fleet/lib")
	w.libSHA = w.lib.Commit("main", map[string]string{"lib.txt": "lib v1\n"})
	w.bas = w.git.CreateRepo(t, "fleet/base")
	w.baseSHA = w.bas.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: [cm.yaml]\n", "deploy/cm.yaml": "kind: ConfigMap\n"})
	w.bas.Tag("v1.2", w.baseSHA)
	w.apps = w.git.CreateRepo(t, "fleet/apps")
	w.appsURL = w.git.URL("fleet/apps")
	return w
}

// release commits a revision of the app (the submodule at libSHA, an LFS
// file holding blob) and pushes its bundle recording the submodule and the
// remote base, as CI does.
func (w *depsWorld) release(blob []byte) string {
	w.t.Helper()
	w.blob = blob
	obj := w.lfsUp.Upload(w.t, "fleet/apps", blob)
	sha := w.apps.CommitChange("main", gitserver.Change{
		Files: map[string]string{
			".gitmodules":        "[submodule \"vendor/lib\"]\n\tpath = vendor/lib\n\turl = " + w.git.URL("fleet/lib") + "\n",
			".lfsconfig":         "[lfs]\n\turl = " + w.lfsUp.URL("fleet/apps") + "\n",
			".gitattributes":     "*.bin filter=lfs diff=lfs merge=lfs -text\n",
			"data/model.bin":     obj.Pointer(),
			"kustomization.yaml": "resources:\n- " + w.git.URL("fleet/base") + "//deploy?ref=v1.2\n",
		},
		Gitlinks: map[string]string{"vendor/lib": w.libSHA},
	})
	n := func(u string) string {
		s, err := gitdeps.Normalize(u)
		if err != nil {
			w.t.Fatal(err)
		}
		return s
	}
	b := bundle.Bundle{Revision: sha, Created: time.Now(), Source: w.appsURL, GitDeps: []bundle.GitDep{
		{Kind: bundle.GitDepSubmodule, URL: n(w.git.URL("fleet/lib")), Commit: w.libSHA, Path: "vendor/lib"},
		{Kind: bundle.GitDepRemoteBase, URL: n(w.git.URL("fleet/base")), Commit: w.baseSHA, Path: "deploy", Ref: "v1.2"},
	}}
	img := testimage.Image(w.t, "linux/amd64", 1, 4096)
	d, _ := img.Digest()
	size, _ := img.Size()
	mt, _ := img.MediaType()
	dst, _ := name.NewDigest(w.up.Repo("fleet/apps-bundles")+"@"+d.String(), name.Insecure)
	if err := remote.Write(dst, img); err != nil {
		w.t.Fatal(err)
	}
	r, _ := imageref.Parse("registry.example.com/app:1")
	b.Images = []bundle.Image{{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Size: size, Digest: d}}}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		w.t.Fatal(err)
	}
	tag, _ := name.NewTag(w.up.Repo("fleet/apps-bundles")+":"+sha, name.Insecure)
	if err := remote.Put(tag, rawIndex{raw, desc.MediaType}); err != nil {
		w.t.Fatal(err)
	}
	return sha
}

type rawIndex struct {
	raw []byte
	mt  types.MediaType
}

func (m rawIndex) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawIndex) MediaType() (types.MediaType, error) { return m.mt, nil }

// export writes the export file from CI's side: a bare clone of the app,
// the dependencies fetched from their upstreams, LFS objects from the LFS
// upstream.
func (w *depsWorld) export(sha, since string) (string, *sneakernet.ExportResult) {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), "apps.git")
	gitserver.Git(w.t, "", "clone", "--quiet", "--bare", w.appsURL, dir)
	// CI checkouts may have no origin remote: LFS goes by LFSURL alone.
	gitserver.Git(w.t, dir, "remote", "remove", "origin")
	file := filepath.Join(w.t.TempDir(), "update.tar")
	res, err := sneakernet.Export(context.Background(), sneakernet.ExportOptions{
		Bundle: w.up.Repo("fleet/apps-bundles") + ":" + sha, GitDir: dir, Output: file, Since: since,
		LFSURL: w.lfsUp.URL("fleet/apps"), RemoteOptions: []registryclient.Option{anon},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return file, res
}

func (w *depsWorld) siteConfig() *config.Config {
	return &config.Config{
		DataDir: w.t.TempDir(),
		Listen:  config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"},
		Repositories: []config.Repository{{URL: w.appsURL, Bundles: w.up.Repo("fleet/apps-bundles"), Track: []string{"refs/heads/main"},
			KeepRevisions: 5, PollInterval: config.Duration{Duration: time.Hour}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{w.up.Addr: {Insecure: true}},
	}
}

func importFile(t *testing.T, cfg *config.Config, file string) (*sneakernet.ImportResult, error) {
	t.Helper()
	s, err := site.Open(context.Background(), cfg, site.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Import(context.Background(), sneakernet.ImportOptions{File: file})
}

func clientGit(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(gitserver.Env(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// A revision with a submodule, a remote base and an LFS file travels on a
// drive: exported on the connected side, imported into an edge that never
// had a link (every upstream stopped), where `ballast verify` is READY and
// a client clones the submodule, reads the base at its tag and pulls the
// LFS file from the edge's mirror. A second export --since carries none
// of it again.
func TestExportImportCarriesGitDepsAndLFS(t *testing.T) {
	w := newDepsWorld(t)
	sha := w.release(bytes.Repeat([]byte("model weights\n"), 4096))
	file, res := w.export(sha, "")
	if res.GitDepCommits != 2 || res.LFSObjects != 1 || res.LFSBytes != int64(len(w.blob)) || res.GitDepsBytes == 0 {
		t.Fatalf("export: %+v", res)
	}
	cfg := w.siteConfig()
	w.git.Stop()
	w.lfsUp.Stop()
	w.up.Stop()

	ir, err := importFile(t, cfg, file)
	if err != nil {
		t.Fatal(err)
	}
	if ir.GitDepCommits != 2 || ir.LFSObjects != 1 || ir.LFSBytes != int64(len(w.blob)) {
		t.Fatalf("import: %+v", ir)
	}
	// Imported again: nothing copied twice.
	if ir, err = importFile(t, cfg, file); err != nil || ir.LFSObjects != 0 || ir.LFSSkipped != 1 {
		t.Fatalf("second import: %v %+v", err, ir)
	}

	ed := edged.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var r *verify.Result
	for {
		r, err = verify.Run(ctx, verify.Options{RepoURL: w.appsURL, Revision: sha, MirrorURL: ed.URL, Registry: ed.Registry})
		if err != nil {
			t.Fatal(err)
		}
		if r.Ready || ctx.Err() != nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !r.Ready || r.GitDeps != 2 || r.LFSObjects != 1 {
		t.Fatalf("verify offline: %+v", r)
	}

	// A client of the edge: upstream URLs rewritten to the mirror, as the
	// repo-server's git config does.
	work := t.TempDir()
	rewrite := "url." + ed.URL + "/git/" + w.git.Addr() + "/.insteadOf=http://" + w.git.Addr() + "/"
	lfsRewrite := "url." + ed.URL + "/git/" + w.git.Addr() + "/fleet/apps.git/info/lfs.insteadOf=" + w.lfsUp.URL("fleet/apps")
	clientGit(t, work, []string{"GIT_LFS_SKIP_SMUDGE=1"}, "-c", rewrite, "-c", "protocol.file.allow=never", "clone", "--quiet", "--recurse-submodules", w.appsURL, "c")
	clone := filepath.Join(work, "c")
	if got, err := os.ReadFile(filepath.Join(clone, "vendor", "lib", "lib.txt")); err != nil || string(got) != "lib v1\n" {
		t.Fatalf("submodule content: %q %v", got, err)
	}
	clientGit(t, clone, nil, "lfs", "install", "--local")
	clientGit(t, clone, nil, "-c", lfsRewrite, "lfs", "pull")
	if got, err := os.ReadFile(filepath.Join(clone, "data", "model.bin")); err != nil || !bytes.Equal(got, w.blob) {
		t.Fatalf("LFS file after git lfs pull from the edge: %d bytes, %v", len(got), err)
	}
	if got := clientGit(t, work, nil, "ls-remote", ed.URL+"/git/"+w.git.Addr()+"/fleet/base.git", "refs/tags/v1.2"); !strings.HasPrefix(got, w.baseSHA) {
		t.Fatalf("remote base tag at the edge: %q, want %s", got, w.baseSHA)
	}
}

// An incremental export (--since) leaves out the dependency commits and
// LFS objects the site got with the base revision, and carries the new
// ones with the old commits as prerequisites.
func TestIncrementalExportSkipsWhatTheSiteHas(t *testing.T) {
	w := newDepsWorld(t)
	rev1 := w.release([]byte("v1 weights\n"))
	file1, _ := w.export(rev1, "")
	// rev2: same LFS object and base, a new submodule commit.
	w.libSHA = w.lib.Commit("main", map[string]string{"lib.txt": "lib v2\n"})
	rev2 := w.release([]byte("v1 weights\n"))
	file2, res := w.export(rev2, rev1)
	if res.GitDepCommits != 1 || res.LFSObjects != 0 {
		t.Fatalf("incremental export: %+v (want 1 new submodule commit, no LFS object)", res)
	}
	ex, err := exportfile.Open(file2)
	if err != nil {
		t.Fatal(err)
	}
	if g := ex.Manifest.GitDeps; len(g) != 1 || len(g[0].Prerequisites) != 1 || g[0].Commits[0] != w.libSHA {
		t.Fatalf("gitDeps of the incremental file: %+v", g)
	}
	ex.Close()
	cfg := w.siteConfig()
	w.git.Stop()
	w.lfsUp.Stop()
	for _, f := range []string{file1, file2} {
		if _, err := importFile(t, cfg, f); err != nil {
			t.Fatal(err)
		}
	}
	s, err := site.Open(context.Background(), cfg, site.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range s.Mirror.GitDeps() {
		if len(d.Missing) > 0 {
			t.Fatalf("dependency %s misses %v", d.ID, d.Missing)
		}
	}
	if rep, err := s.LFS.Revision(context.Background(), w.appsURL, rev2); err != nil || !rep.Complete {
		t.Fatalf("LFS of rev2: %v %+v", err, rep)
	}
}

// rewriteExport copies an export file, passing each entry through edit
// (which may change its content) and writing the manifest it returns.
func rewriteExport(t *testing.T, in string, edit func(name string, b []byte, m *exportfile.Manifest) []byte) string {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type entry struct {
		h *tar.Header
		b []byte
	}
	var es []entry
	var m exportfile.Manifest
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == exportfile.ManifestName {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			continue
		}
		es = append(es, entry{h, b})
	}
	out := filepath.Join(t.TempDir(), "edited.tar")
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(o)
	for _, e := range es {
		e.b = edit(e.h.Name, e.b, &m)
		e.h.Size = int64(len(e.b))
		tw.WriteHeader(e.h)
		tw.Write(e.b)
	}
	raw, _ := json.Marshal(m)
	tw.WriteHeader(&tar.Header{Name: exportfile.ManifestName, Mode: 0o644, Size: int64(len(raw)), Typeflag: tar.TypeReg})
	tw.Write(raw)
	tw.Close()
	o.Close()
	return out
}

// Bad files: an LFS object that is not its oid (even with the checksum
// list made to agree), a truncated file, a dependency bundle without the
// recorded commit. Each is a clear input error and nothing is trusted: the
// gate's inputs stay absent.
func TestImportRefusesBadDepsAndLFS(t *testing.T) {
	w := newDepsWorld(t)
	sha := w.release([]byte("weights\n"))
	file, _ := w.export(sha, "")
	cfg := w.siteConfig()
	w.git.Stop()
	w.lfsUp.Stop()

	sum := func(b []byte) string { return lfsserver.ObjectOf(b).OID }
	fixFile := func(m *exportfile.Manifest, name string, b []byte) {
		for i := range m.Files {
			if m.Files[i].Name == name {
				m.Files[i].Size, m.Files[i].SHA256 = int64(len(b)), sum(b)
			}
		}
	}
	badLFS := rewriteExport(t, file, func(n string, b []byte, m *exportfile.Manifest) []byte {
		if strings.HasPrefix(n, exportfile.LFSPrefix+"/") {
			b = []byte("not the object\n")
			fixFile(m, n, b)
		}
		return b
	})
	// Another repository's bundle in place of lib's: it verifies as a
	// bundle but lacks the recorded commit.
	other := filepath.Join(t.TempDir(), "other.bundle")
	gitserver.Git(t, "", "--git-dir="+w.bas.Dir, "update-ref", "refs/ballast/export/"+w.baseSHA, w.baseSHA)
	gitserver.Git(t, "", "--git-dir="+w.bas.Dir, "bundle", "create", "--quiet", other, "refs/ballast/export/"+w.baseSHA)
	otherRaw, _ := os.ReadFile(other)
	badDep := rewriteExport(t, file, func(n string, b []byte, m *exportfile.Manifest) []byte {
		for _, g := range m.GitDeps {
			if g.Bundle == n && g.Commits[0] == w.libSHA {
				fixFile(m, n, otherRaw)
				return otherRaw
			}
		}
		return b
	})
	raw, _ := os.ReadFile(file)
	truncated := filepath.Join(t.TempDir(), "truncated.tar")
	os.WriteFile(truncated, raw[:len(raw)*2/3], 0o644)

	for _, tc := range []struct{ name, file, want string }{
		{"lfs object not its oid", badLFS, "lfs[0]"},
		{"truncated", truncated, ""},
		{"dependency bundle without the commit", badDep, "does not hold commit " + w.libSHA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := importFile(t, cfg, tc.file)
			if err == nil || !errors.Is(err, sneakernet.ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want an input error naming %q", err, tc.want)
			}
			t.Log(err)
			s, err := site.Open(context.Background(), cfg, site.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if rep, err := s.LFS.Revision(context.Background(), w.appsURL, sha); err == nil && rep.Complete {
				t.Fatal("LFS object trusted from a bad file")
			}
			for _, d := range s.Mirror.GitDeps() {
				for _, c := range d.Commits {
					if c == w.libSHA && !contains(d.Missing, c) {
						t.Fatal("submodule commit trusted from a bad file")
					}
				}
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Export from a connected edge: the bundle from its registry, the git
// objects from its mirror's repository, the submodule and base commits and
// the LFS objects from its mirror (--deps-mirror). The second edge, with
// every upstream and the first edge stopped, is READY.
func TestExportFromEdgeToEdge(t *testing.T) {
	w := newDepsWorld(t)
	sha := w.release(bytes.Repeat([]byte("weights\n"), 1000))
	cfgA := w.siteConfig()
	cfgA.Repositories[0].PollInterval = config.Duration{Duration: time.Second}
	edA := edged.Start(t, cfgA)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		r, err := verify.Run(ctx, verify.Options{RepoURL: w.appsURL, Revision: sha, MirrorURL: edA.URL, Registry: edA.Registry})
		if err == nil && r.Ready {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("edge A never ready: %v %+v", err, r)
		}
		time.Sleep(300 * time.Millisecond)
	}
	bundleRepo, err := imageref.BundleRepository(w.appsURL)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := imageref.RepoID(w.appsURL)
	file := filepath.Join(t.TempDir(), "from-edge.tar")
	res, err := sneakernet.Export(ctx, sneakernet.ExportOptions{
		Bundle: edA.Registry + "/" + bundleRepo + ":" + sha, GitDir: filepath.Join(cfgA.DataDir, "git", id+".git"),
		Output: file, DepsMirror: edA.URL,
		RemoteOptions: []registryclient.Option{anon, registryclient.WithInsecure(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.GitDepCommits != 2 || res.LFSObjects != 1 {
		t.Fatalf("export from edge A: %+v", res)
	}
	w.git.Stop()
	w.lfsUp.Stop()
	w.up.Stop()
	cfgB := w.siteConfig()
	if _, err := importFile(t, cfgB, file); err != nil {
		t.Fatal(err)
	}
	edB := edged.Start(t, cfgB)
	for {
		r, err := verify.Run(ctx, verify.Options{RepoURL: w.appsURL, Revision: sha, MirrorURL: edB.URL, Registry: edB.Registry})
		if err != nil {
			t.Fatal(err)
		}
		if r.Ready {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("edge B not ready offline: %+v", r)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
