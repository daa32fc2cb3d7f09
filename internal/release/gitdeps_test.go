package release_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/discover"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

func deployment(image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: %s}]
`, image)
}

type gitdepsFixture struct {
	up   *regserver.Server
	gs   *gitserver.Server
	lib  *gitserver.Repo
	apps *gitserver.Repo
}

func newGitdepsFixture(t *testing.T) *gitdepsFixture {
	t.Helper()
	f := &gitdepsFixture{up: regserver.Start(t, regserver.Options{}), gs: gitserver.New(t)}
	for _, img := range []string{"src/web:1", "src/lib:1", "src/base:1"} {
		ref, _ := name.ParseReference(f.up.Repo(img), name.Insecure)
		if err := remote.WriteIndex(ref, testimage.Index(t, []string{"linux/amd64"}, 1, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	f.lib = f.gs.CreateRepo(t, "fleet/lib")
	f.apps = f.gs.CreateRepo(t, "fleet/apps")
	return f
}

func (f *gitdepsFixture) bundle(t *testing.T) (*release.Result, error) {
	t.Helper()
	checkout := t.TempDir()
	gitserver.Git(t, "", "clone", "-q", f.gs.URL("fleet/apps"), checkout)
	return release.Run(context.Background(), release.Options{
		RepoDir: checkout, Revision: "HEAD", DryRun: true,
		Lister:        discover.Lister(discover.ListerOptions{}),
		RemoteOptions: []registryclient.Option{registryclient.WithKeychain(authn.NewMultiKeychain()), registryclient.WithInsecure(true)},
	})
}

func imageRefs(res *release.Result) []string {
	var out []string
	for _, im := range res.Images {
		out = append(out, im.Ref)
	}
	return out
}

// An app that lives in a submodule is rendered from the submodule's commit,
// as Argo CD checks it out: its image is in the bundle.
func TestBundleAppInSubmodule(t *testing.T) {
	f := newGitdepsFixture(t)
	libSHA := f.lib.Commit("main", map[string]string{"deploy/app.yaml": deployment(f.up.Repo("src/lib:1"))})
	f.apps.CommitChange("main", gitserver.Change{
		Files: map[string]string{
			".gitmodules":   "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n",
			"ballast.yaml":  "apps:\n- path: site\n- path: vendor/lib/deploy\n",
			"site/app.yaml": deployment(f.up.Repo("src/web:1")),
		},
		Gitlinks: map[string]string{"vendor/lib": libSHA},
	})
	res, err := f.bundle(t)
	if err != nil {
		t.Fatal(err)
	}
	refs := imageRefs(res)
	if !slices.Contains(refs, f.up.Repo("src/lib:1")) || !slices.Contains(refs, f.up.Repo("src/web:1")) {
		t.Fatalf("images %v: want the submodule app's image too", refs)
	}
	if len(res.Submodules) != 1 || res.Submodules[0].Commit != libSHA || res.Submodules[0].URL != f.gs.URL("fleet/lib") {
		t.Fatalf("submodules recorded: %+v", res.Submodules)
	}
}

// A submodule whose commit cannot be read is bad input (exit 2), never an
// app silently left out.
func TestBundleUnreadableSubmodule(t *testing.T) {
	f := newGitdepsFixture(t)
	f.apps.CommitChange("main", gitserver.Change{
		Files: map[string]string{
			".gitmodules":   "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../missing.git\n",
			"ballast.yaml":  "apps:\n- path: site\n",
			"site/app.yaml": deployment(f.up.Repo("src/web:1")),
		},
		Gitlinks: map[string]string{"vendor/lib": "1111111111111111111111111111111111111111"},
	})
	_, err := f.bundle(t)
	if !errors.Is(err, release.ErrInput) {
		t.Fatalf("err %v, want bad input", err)
	}
	t.Log(err)
}

func TestBundleBadGitmodules(t *testing.T) {
	for name, gm := range map[string]string{
		"path escape": "[submodule \"lib\"]\n\tpath = ../../x\n\turl = ../lib.git\n",
		"option url":  "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = --upload-pack=touch /tmp/x\n",
		"url escape":  "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../../../../x.git\n",
		"huge":        "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n\tpad = " + strings.Repeat("a", 2<<20) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := newGitdepsFixture(t)
			libSHA := f.lib.Commit("main", map[string]string{"deploy/app.yaml": deployment(f.up.Repo("src/lib:1"))})
			f.apps.CommitChange("main", gitserver.Change{
				Files: map[string]string{
					".gitmodules":   gm,
					"ballast.yaml":  "apps:\n- path: site\n",
					"site/app.yaml": deployment(f.up.Repo("src/web:1")),
				},
				Gitlinks: map[string]string{"vendor/lib": libSHA},
			})
			_, err := f.bundle(t)
			if !errors.Is(err, release.ErrInput) {
				t.Fatalf("err %v, want bad input", err)
			}
			t.Log(err)
		})
	}
}

// Remote Kustomize bases pinned by tag and by commit are rendered (their
// images are in the bundle) and recorded with the commit each resolved to.
func TestBundleRemoteBases(t *testing.T) {
	f := newGitdepsFixture(t)
	base := f.gs.CreateRepo(t, "fleet/base")
	v1 := base.Commit("main", map[string]string{
		"deploy/kustomization.yaml": "resources: [app.yaml]\n",
		"deploy/app.yaml":           deployment(f.up.Repo("src/base:1")),
	})
	base.Git("tag", "-a", "-m", "v1.2", "v1.2", v1)
	v2 := base.Commit("main", map[string]string{"deploy/app.yaml": deployment(f.up.Repo("src/lib:1"))})
	f.apps.Commit("main", map[string]string{
		"ballast.yaml":                    "apps:\n- path: tagged\n- path: pinned\n",
		"tagged/kustomization.yaml":       "resources:\n- " + f.gs.URL("fleet/base") + "//deploy?ref=v1.2\n",
		"pinned/kustomization.yaml":       "resources: [inner]\n",
		"pinned/inner/kustomization.yaml": "resources:\n- " + f.gs.URL("fleet/base") + "//deploy?ref=" + v2 + "\n",
	})
	res, err := f.bundle(t)
	if err != nil {
		t.Fatal(err)
	}
	refs := imageRefs(res)
	if !slices.Contains(refs, f.up.Repo("src/base:1")) || !slices.Contains(refs, f.up.Repo("src/lib:1")) {
		t.Fatalf("images %v: want both bases' images", refs)
	}
	want := map[string]string{"v1.2": v1, v2: v2}
	if len(res.RemoteBases) != 2 {
		t.Fatalf("remote bases %+v", res.RemoteBases)
	}
	for _, d := range res.RemoteBases {
		if d.URL != f.gs.URL("fleet/base") || d.Path != "deploy" || want[d.Ref] != d.Commit {
			t.Errorf("remote base %+v", d)
		}
	}
}

// A remote base whose kustomization names another remote base: both are
// recorded (Kustomize fetches the inner one when it renders the outer),
// each at the commit its ref resolves to.
func TestBundleNestedRemoteBases(t *testing.T) {
	f := newGitdepsFixture(t)
	inner := f.gs.CreateRepo(t, "fleet/inner")
	i1 := inner.Commit("main", map[string]string{
		"deploy/kustomization.yaml": "namePrefix: inner-\nresources: [app.yaml]\n",
		"deploy/app.yaml":           deployment(f.up.Repo("src/lib:1")),
	})
	outer := f.gs.CreateRepo(t, "fleet/outer")
	o1 := outer.Commit("main", map[string]string{
		"deploy/kustomization.yaml":       "resources:\n- local\n",
		"deploy/local/kustomization.yaml": "resources:\n- app.yaml\n- " + f.gs.URL("fleet/inner") + "//deploy?ref=main\n",
		"deploy/local/app.yaml":           deployment(f.up.Repo("src/base:1")),
	})
	f.apps.Commit("main", map[string]string{
		"ballast.yaml":           "apps:\n- path: app\n",
		"app/kustomization.yaml": "resources:\n- " + f.gs.URL("fleet/outer") + "//deploy?ref=main\n",
	})
	res, err := f.bundle(t)
	if err != nil {
		t.Fatal(err)
	}
	refs := imageRefs(res)
	if !slices.Contains(refs, f.up.Repo("src/base:1")) || !slices.Contains(refs, f.up.Repo("src/lib:1")) {
		t.Fatalf("images %v: want both bases' images", refs)
	}
	got := map[string]string{}
	for _, d := range res.RemoteBases {
		got[d.URL+"//"+d.Path+"?ref="+d.Ref] = d.Commit
	}
	if len(got) != 2 || got[f.gs.URL("fleet/outer")+"//deploy?ref=main"] != o1 || got[f.gs.URL("fleet/inner")+"//deploy?ref=main"] != i1 {
		t.Fatalf("remote bases %+v, want outer at %s and inner at %s", got, o1, i1)
	}
}
