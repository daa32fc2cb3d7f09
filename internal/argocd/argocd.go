// Package argocd reads what the gate needs from an Argo CD Application: the
// revision the running sync operation resolved.
package argocd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
)

// ErrNotSet means the Application has no sync revision yet.
var ErrNotSet = errors.New("the Application's sync revision is not set yet")

// Client reads Applications from the Kubernetes API.
type Client struct {
	base *url.URL
	http *http.Client
}

// NewClient uses in-cluster config when present (a service account token),
// else the standard kubeconfig rules ($KUBECONFIG, ~/.kube/config).
func NewClient() (*Client, error) {
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return NewClientForConfig(cfg)
}

// NewClientForConfig builds a client from a rest.Config.
func NewClientForConfig(cfg *rest.Config) (*Client, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	base, err := url.Parse(strings.TrimRight(host, "/") + cfg.APIPath)
	if err != nil {
		return nil, fmt.Errorf("kubernetes host %q: %w", cfg.Host, err)
	}
	return &Client{base: base, http: hc}, nil
}

// application is the part of an Argo CD Application the gate reads.
type application struct {
	Spec struct {
		Source  *source  `json:"source"`
		Sources []source `json:"sources"`
	} `json:"spec"`
	Status struct {
		OperationState *struct {
			Phase      string `json:"phase"`
			SyncResult *struct {
				Revision  string   `json:"revision"`
				Revisions []string `json:"revisions"`
			} `json:"syncResult"`
			Operation struct {
				Sync *struct {
					Revision  string   `json:"revision"`
					Revisions []string `json:"revisions"`
				} `json:"sync"`
			} `json:"operation"`
		} `json:"operationState"`
	} `json:"status"`
}

type source struct {
	RepoURL string `json:"repoURL"`
}

// Revision returns the revision of the Application's current sync
// operation for the source that mirrors repoURL (the upstream URL, as in
// the edge config). Multi-source Applications are matched by repository
// id, since their repoURL points at the mirror.
func (c *Client) Revision(ctx context.Context, namespace, name, repoURL string) (string, error) {
	u := c.base.JoinPath("apis/argoproj.io/v1alpha1/namespaces", namespace, "applications", name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("get Application %s/%s: %w", namespace, name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", fmt.Errorf("get Application %s/%s: %w", namespace, name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get Application %s/%s: %s: %s", namespace, name, resp.Status, firstLine(body))
	}
	return revisionOf(body, repoURL)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// revisionOf extracts the sync revision from an Application document.
func revisionOf(doc []byte, repoURL string) (string, error) {
	var app application
	if err := json.Unmarshal(doc, &app); err != nil {
		return "", fmt.Errorf("decode Application: %w", err)
	}
	op := app.Status.OperationState
	if op == nil || op.SyncResult == nil {
		return "", ErrNotSet
	}
	rev := op.SyncResult.Revision
	if len(app.Spec.Sources) > 0 {
		want, err := imageref.RepoID(repoURL)
		if err != nil {
			return "", err
		}
		idx := -1
		for i, s := range app.Spec.Sources {
			if matchesRepo(s.RepoURL, want) {
				idx = i
				break
			}
		}
		if idx < 0 {
			return "", fmt.Errorf("no source of the Application mirrors %s", repoURL)
		}
		if idx >= len(op.SyncResult.Revisions) {
			return "", ErrNotSet
		}
		rev = op.SyncResult.Revisions[idx]
	}
	if rev == "" {
		return "", ErrNotSet
	}
	if !bundle.IsRevision(rev) {
		return "", fmt.Errorf("sync revision %q is not a 40-hex commit SHA", rev)
	}
	return rev, nil
}

// matchesRepo reports whether an Application's repoURL (the mirror URL
// .../git/<id>.git, or the upstream URL itself) serves repository id.
func matchesRepo(appURL, id string) bool {
	got, err := imageref.RepoID(appURL)
	if err != nil {
		return false
	}
	got = strings.ToLower(got)
	id = strings.ToLower(id)
	if got == id {
		return true
	}
	_, path, _ := strings.Cut(got, "/")
	return path == "git/"+id
}

// WaitRevision polls Revision until the revision is set, the context ends,
// or timeout passes. The controller writes it before hooks run, but a hook
// may start before the write is visible.
func (c *Client) WaitRevision(ctx context.Context, namespace, name, repoURL string, timeout, interval time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error // the last answer worth reporting
	for {
		rev, err := c.Revision(ctx, namespace, name, repoURL)
		if err == nil {
			return rev, nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		if ctx.Err() == nil && !errors.Is(err, ErrNotSet) && !isTransient(err) {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("application %s/%s: %w (waited %v)", namespace, name, last, timeout)
		case <-time.After(interval):
		}
	}
}

func isTransient(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne)
}
