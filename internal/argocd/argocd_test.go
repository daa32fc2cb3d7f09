package argocd

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/ballast-dev/ballast/internal/bundle"
)

const (
	repo = "https://github.com/fleet/apps.git"
	rev  = "8d1f6f0e5b9c4a4cbf6d3f7e2a1b0c9d8e7f6a5b"
)

func loadApp(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/application.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// apiServer serves Applications the way the Kubernetes API does, checking
// the bearer token; the first notSetFor requests see no sync result yet.
func apiServer(t *testing.T, app map[string]any, notSetFor int32) *httptest.Server {
	t.Helper()
	var calls atomic.Int32
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sa-token" {
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/guestbook" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"applications.argoproj.io \"x\" not found","reason":"NotFound","code":404}`))
			return
		}
		doc := app
		if calls.Add(1) <= notSetFor {
			b, _ := json.Marshal(app)
			var cp map[string]any
			json.Unmarshal(b, &cp)
			delete(cp["status"].(map[string]any)["operationState"].(map[string]any), "syncResult")
			doc = cp
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	}))
}

func client(t *testing.T, url string) *Client {
	t.Helper()
	c, err := NewClientForConfig(&rest.Config{Host: url, BearerToken: "sa-token"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRevision(t *testing.T) {
	srv := apiServer(t, loadApp(t), 0)
	defer srv.Close()
	got, err := client(t, srv.URL).Revision(context.Background(), "argocd", "guestbook", repo)
	if err != nil || got != rev {
		t.Fatalf("Revision = %q, %v", got, err)
	}
	if _, err := client(t, srv.URL).Revision(context.Background(), "argocd", "nope", repo); err == nil || !strings.Contains(err.Error(), "NotFound") && !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing app: %v", err)
	}
}

func TestWaitRevisionUntilSet(t *testing.T) {
	srv := apiServer(t, loadApp(t), 3)
	defer srv.Close()
	got, err := client(t, srv.URL).WaitRevision(context.Background(), "argocd", "guestbook", repo, 5*time.Second, 10*time.Millisecond)
	if err != nil || got != rev {
		t.Fatalf("WaitRevision = %q, %v", got, err)
	}
	srv2 := apiServer(t, loadApp(t), 1<<30)
	defer srv2.Close()
	_, err = client(t, srv2.URL).WaitRevision(context.Background(), "argocd", "guestbook", repo, 500*time.Millisecond, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not set yet") {
		t.Fatalf("never set: %v", err)
	}
}

func TestMultiSource(t *testing.T) {
	app := loadApp(t)
	spec := app["spec"].(map[string]any)
	delete(spec, "source")
	spec["sources"] = []any{
		map[string]any{"repoURL": "http://ballast-edge.ballast.svc:8080/git/github.com/fleet/values.git", "ref": "values"},
		map[string]any{"repoURL": "http://ballast-edge.ballast.svc:8080/git/github.com/fleet/apps.git", "path": "apps/guestbook"},
	}
	sr := app["status"].(map[string]any)["operationState"].(map[string]any)["syncResult"].(map[string]any)
	delete(sr, "revision")
	other := strings.Repeat("a", 40)
	sr["revisions"] = []any{other, rev}
	srv := apiServer(t, app, 0)
	defer srv.Close()
	c := client(t, srv.URL)
	if got, err := c.Revision(context.Background(), "argocd", "guestbook", repo); err != nil || got != rev {
		t.Fatalf("apps source: %q, %v", got, err)
	}
	if got, err := c.Revision(context.Background(), "argocd", "guestbook", "https://github.com/fleet/values.git"); err != nil || got != other {
		t.Fatalf("values source: %q, %v", got, err)
	}
	if _, err := c.Revision(context.Background(), "argocd", "guestbook", "https://github.com/fleet/other.git"); err == nil {
		t.Fatal("unmatched repo accepted")
	}
}

func TestRevisionOfBadInput(t *testing.T) {
	for _, doc := range []string{"", "{", `{"status":{"operationState":{"syncResult":{"revision":"main"}}}}`, `[]`} {
		if r, err := revisionOf([]byte(doc), repo); err == nil {
			t.Errorf("revisionOf(%q) = %q, want error", doc, r)
		}
	}
}

func FuzzRevisionOf(f *testing.F) {
	b, _ := os.ReadFile("testdata/application.json")
	f.Add(b)
	f.Add([]byte(`{"spec":{"sources":[{"repoURL":"http://x/git/github.com/fleet/apps.git"}]},"status":{"operationState":{"syncResult":{"revisions":[]}}}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := revisionOf(doc, repo)
		if err == nil && !bundle.IsRevision(r) {
			t.Fatalf("accepted non-SHA revision %q", r)
		}
	})
}
