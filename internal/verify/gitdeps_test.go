package verify_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// The gate names the submodule and remote base commits the mirror lacks,
// and passes once the mirror has fetched them (through sync handing the
// bundle's git dependencies to the mirror).
func TestVerifyGitDeps(t *testing.T) {
	s := startEdge(t)
	libHost := gitserver.New(t)
	lib := libHost.CreateRepo(t, "fleet/lib")
	libSHA := lib.Commit("main", map[string]string{"lib.txt": "lib\n"})
	base := libHost.CreateRepo(t, "fleet/base")
	v1 := base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	base.Tag("v1.2", v1)
	s.gitDeps = []bundle.GitDep{
		{Kind: bundle.GitDepSubmodule, URL: libHost.URL("fleet/lib"), Commit: libSHA, Path: "vendor/lib"},
		{Kind: bundle.GitDepRemoteBase, URL: libHost.URL("fleet/base"), Commit: v1, Path: "deploy", Ref: "v1.2"},
	}
	libHost.Stop()
	sha := s.release(map[string]ggcrv1.Image{"registry.example.com/app:1": testimage.Image(t, "linux/amd64", 1, 1024)})
	s.waitSynced(sha)
	r := s.verify(sha)
	if r.Ready || len(r.GitDepsMissing) != 2 || !strings.Contains(r.Reason, "submodule vendor/lib") || !strings.Contains(r.Reason, "?ref=v1.2") {
		t.Fatalf("with the dependencies' upstream down: %+v", r)
	}
	t.Log(r.Reason)
	libHost.Start(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		r = s.verify(sha)
		if r.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after the upstream came back: %+v\n%+v", r, s.d.Mirror.GitDeps())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r.GitDeps != 2 {
		t.Fatalf("gitDeps %d, want 2", r.GitDeps)
	}
	resp, err := http.Get(s.mirror + "/api/v1/gitdeps")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var deps []struct {
		ID      string   `json:"id"`
		Commits []string `json:"commits"`
		Missing []string `json:"missing"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&deps); err != nil || len(deps) != 2 {
		t.Fatalf("/api/v1/gitdeps: %v %+v", err, deps)
	}
}
