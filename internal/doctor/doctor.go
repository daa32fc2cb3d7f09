// Package doctor checks an edge node: k3s's registry mirrors and data dir,
// ballast's data dir, and whether the edge daemon answers.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"
)

// Status of one check.
type Status string

// Check outcomes.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is the outcome of one check.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
}

// Options says where things are on the node.
type Options struct {
	// K3sConfigDir holds registries.yaml and config.yaml. The default value
	// is "/etc/rancher/k3s".
	K3sConfigDir string
	// EdgeURL is the edge daemon's HTTP base, e.g. "http://127.0.0.1:8080".
	EdgeURL string
	// Registry is the edge registry as containerd reaches it, host:port.
	Registry string
	// DataDir is ballast's data dir; empty skips its check.
	DataDir string
	// HTTPClient defaults to a client with a 5 s timeout.
	HTTPClient *http.Client
}

// volatileFS are filesystem types whose contents a reboot loses.
var volatileFS = map[int64]string{unix.TMPFS_MAGIC: "tmpfs", unix.RAMFS_MAGIC: "ramfs"}

// Run performs every check and returns their results in a fixed order.
func Run(ctx context.Context, o Options) []Result {
	if o.K3sConfigDir == "" {
		o.K3sConfigDir = "/etc/rancher/k3s"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	var rs []Result
	rs = append(rs, checkRegistries(o))
	rs = append(rs, checkK3sConfig(o)...)
	if o.DataDir != "" {
		rs = append(rs, checkDir("ballast data dir", o.DataDir, true))
	}
	rs = append(rs, checkHTTP(ctx, o.HTTPClient, "edge daemon", strings.TrimRight(o.EdgeURL, "/")+"/readyz"))
	rs = append(rs, checkHTTP(ctx, o.HTTPClient, "edge registry", "http://"+o.Registry+"/v2/"))
	return rs
}

// Failed reports whether any result is a failure.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

func checkRegistries(o Options) Result {
	const name = "k3s registries.yaml"
	p := filepath.Join(o.K3sConfigDir, "registries.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		return Result{name, Fail, fmt.Sprintf("%v: write it with `ballast install --output-dir` (k3s/registries.yaml)", err)}
	}
	var doc struct {
		Mirrors map[string]struct {
			Endpoint []string `json:"endpoint"`
		} `json:"mirrors"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Result{name, Fail, fmt.Sprintf("%s: %v", p, err)}
	}
	want := "http://" + o.Registry
	var covered, others []string
	for reg, m := range doc.Mirrors {
		hit := false
		for _, ep := range m.Endpoint {
			if strings.TrimRight(ep, "/") == want {
				hit = true
			}
		}
		if hit {
			covered = append(covered, reg)
		} else {
			others = append(others, reg)
		}
	}
	switch {
	case len(covered) == 0:
		return Result{name, Fail, fmt.Sprintf("%s: no mirror points at %s", p, want)}
	case contains(covered, "*") && len(others) == 0:
		return Result{name, OK, fmt.Sprintf(`every registry ("*") pulls through %s`, want)}
	case len(others) > 0:
		return Result{name, Warn, fmt.Sprintf("%s pull through %s, but %s do not", strings.Join(covered, ", "), want, strings.Join(others, ", "))}
	default:
		return Result{name, Warn, fmt.Sprintf(`only %s pull through %s; "*" covers every registry`, strings.Join(covered, ", "), want)}
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func checkK3sConfig(o Options) []Result {
	const name = "k3s config.yaml"
	p := filepath.Join(o.K3sConfigDir, "config.yaml")
	cfg := map[string]any{}
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return []Result{{name, Fail, err.Error()}}
	default:
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return []Result{{name, Fail, fmt.Sprintf("%s: %v", p, err)}}
		}
	}
	dataDir, _ := cfg["data-dir"].(string)
	if dataDir == "" {
		dataDir = "/var/lib/rancher/k3s"
	}
	var rs []Result
	if v, _ := cfg["disable-default-registry-endpoint"].(bool); v {
		rs = append(rs, Result{name, OK, "disable-default-registry-endpoint: true (no pulls from upstream)"})
	} else {
		rs = append(rs, Result{name, Warn, "disable-default-registry-endpoint is not true: a missing image makes containerd try upstream, which hangs while the link is down"})
	}
	rs = append(rs, checkDir("k3s data dir", dataDir, false))
	return rs
}

// checkDir checks that dir is on storage that survives a reboot and, when
// writable is set, that it can be written.
func checkDir(name, dir string, writable bool) Result {
	var st unix.Statfs_t
	probe := dir
	for {
		if err := unix.Statfs(probe, &st); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return Result{name, Fail, fmt.Sprintf("%s: cannot stat", dir)}
		}
		probe = parent
	}
	if fsName, bad := volatileFS[int64(st.Type)]; bad {
		return Result{name, Fail, fmt.Sprintf("%s is on %s: its contents are lost at reboot; put it on persistent disk", dir, fsName)}
	}
	if probe != dir {
		return Result{name, Warn, fmt.Sprintf("%s does not exist yet (its filesystem at %s is persistent)", dir, probe)}
	}
	if writable {
		f, err := os.CreateTemp(dir, ".doctor-*")
		if err != nil {
			return Result{name, Fail, fmt.Sprintf("%s is not writable: %v", dir, err)}
		}
		f.Close()
		os.Remove(f.Name())
	}
	return Result{name, OK, fmt.Sprintf("%s is on persistent storage", dir)}
}

func checkHTTP(ctx context.Context, c *http.Client, name, url string) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Result{name, Fail, err.Error()}
	}
	resp, err := c.Do(req)
	if err != nil {
		return Result{name, Fail, fmt.Sprintf("%s: %v", url, err)}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{name, Fail, fmt.Sprintf("%s answered %s", url, resp.Status)}
	}
	return Result{name, OK, url + " answers"}
}
