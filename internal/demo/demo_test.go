package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// plainLister lists the images of plain YAML manifests (an Application's
// first source path, or a directory, recursively): enough for the demo's
// apps without pulling the renderers into this test.
func plainLister(ctx context.Context, dir string, spec release.AppSpec) (release.Found, error) {
	refs, err := plainRefs(ctx, dir, spec)
	return release.Found{Images: refs}, err
}

func plainRefs(_ context.Context, dir string, spec release.AppSpec) ([]imageref.Ref, error) {
	p := spec.Path
	if spec.Application != "" {
		raw, err := os.ReadFile(filepath.Join(dir, spec.Application))
		if err != nil {
			return nil, err
		}
		objs, err := images.Decode(spec.Application, raw)
		if err != nil || len(objs) != 1 {
			return nil, fmt.Errorf("application %s: %v", spec.Application, err)
		}
		src, _ := objs[0].Doc["spec"].(map[string]any)["source"].(map[string]any)
		p, _ = src["path"].(string)
	}
	var refs []imageref.Ref
	err := filepath.WalkDir(filepath.Join(dir, p), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || d.Name() == "kustomization.yaml" {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		objs, err := images.Decode(path, raw)
		if err != nil {
			return err
		}
		for _, o := range objs {
			occ, err := images.Extract(o)
			if err != nil {
				return err
			}
			for _, oc := range occ {
				refs = append(refs, oc.Ref)
			}
		}
		return nil
	})
	return refs, err
}

// shortOptions make the story quick: small images, a faster link that is
// still cut many times.
func shortOptions(out io.Writer) Options {
	return Options{
		Out:         out,
		Lister:      plainLister,
		Scale:       0.05, // about 3 MiB for the edge
		Link:        LinkOptions{Latency: 20 * time.Millisecond, Bandwidth: 4 << 20, CutEvery: 256 << 10},
		StepTimeout: 60 * time.Second,
	}
}

// TestDemo runs the whole story with a short configuration and checks what
// it tells and what it leaves behind: no files, no child processes, no
// goroutines.
func TestDemo(t *testing.T) {
	gitserver.RequireGit(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	goroutines := runtime.NumGoroutine()

	var out bytes.Buffer
	var statusURL string
	o := shortOptions(&out)
	o.OnStatusURL = func(u string) { statusURL = u }
	start := time.Now()
	res, err := Run(context.Background(), o)
	t.Logf("Run took %v; story:\n%s", time.Since(start), out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	story := out.String()
	for _, want := range []string{
		"upstream git repository http://127.0.0.1:",
		"ballast bundle → 127.0.0.1:",
		"satellite link simulated by Toxiproxy",
		"→ NOT READY: commit",
		"git mirror fetched fleet/apps over the link: main = " + short(res.Rev1.Revision),
		"ballast verify " + short(res.Rev1.Revision) + " → READY",
		"ballast verify " + short(res.Rev2.Revision) + " → NOT READY",
		"ballast verify " + short(res.Rev2.Revision) + " → READY",
		"cut: the proxies are down",
		"git mirror poll fails",
		"offline: git ls-remote and git clone",
		"offline: GET 127.0.0.1:",
		"rollback to revision 1 with the link down",
		"status page: " + statusURL,
	} {
		if !strings.Contains(story, want) {
			t.Errorf("the story lacks %q", want)
		}
	}
	if !strings.HasPrefix(statusURL, "http://127.0.0.1:") {
		t.Errorf("status URL %q", statusURL)
	}
	// The offline rollback comes after the cut, and READY after it.
	if i, j := strings.Index(story, "cut: the proxies"), strings.LastIndex(story, "ballast verify "+short(res.Rev1.Revision)+" → READY"); i < 0 || j < i {
		t.Errorf("no READY for revision 1 after the link was cut")
	}

	// DESIGN.md targets: a bundle over a link that cuts every few MB costs
	// at most 1.05× its bytes; a revision that changes one layer costs
	// about that layer.
	if res.Rev1.Retries == 0 {
		t.Errorf("revision 1 crossed a link that cuts every 256 KiB without a retry: %+v", res.Rev1)
	}
	if res.Rev1.MissingBytes != res.Rev1.BundleBytes {
		t.Errorf("revision 1: the edge lacked %d of %d bytes, want all", res.Rev1.MissingBytes, res.Rev1.BundleBytes)
	}
	// Bytes over the link are the link proxy's own count (Toxiproxy, HTTP
	// headers included), not a counter of the code under test; MissingBytes
	// comes from the bundle's descriptors and what the edge held.
	for _, f := range []Figures{res.Rev1} {
		if r := ratio(f.WireBytes, f.MissingBytes); r < 0.99 || r > 1.05 {
			t.Errorf("revision %s: the link proxy delivered %d bytes for %d missing (%.3f×), want 0.99–1.05×", short(f.Revision), f.WireBytes, f.MissingBytes, r)
		}
		// And sync's own figure, which the story prints, is not above
		// what actually crossed.
		if f.LinkBytes > f.WireBytes {
			t.Errorf("revision %s: sync claims %d bytes read, the link delivered only %d", short(f.Revision), f.LinkBytes, f.WireBytes)
		}
	}
	// Revision 2 rebuilds one layer: a delta of it crosses, not the layer.
	if res.Rev2.DeltaBytes == 0 {
		t.Errorf("revision 2: bundle published no delta")
	}
	if r := ratio(res.Rev2.WireBytes, res.Rev2.MissingBytes); r > 0.5 {
		t.Errorf("revision 2: the link proxy delivered %d bytes for %d missing (%.3f×), want at most 0.5× (a delta)", res.Rev2.WireBytes, res.Rev2.MissingBytes, r)
	}
	if res.Rev2.LinkBytes > res.Rev2.WireBytes {
		t.Errorf("revision 2: sync claims %d bytes read, the link delivered only %d", res.Rev2.LinkBytes, res.Rev2.WireBytes)
	}
	if res.Rev2.MissingBytes > res.Rev2.NewBytes || res.Rev2.MissingBytes*4 > res.Rev2.BundleBytes {
		t.Errorf("revision 2: the edge lacked %d bytes of a %d-byte bundle, CI pushed %d new: want only the new layer", res.Rev2.MissingBytes, res.Rev2.BundleBytes, res.Rev2.NewBytes)
	}

	// Nothing left behind.
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes left: %v", kids)
	}
	// Two goroutines may stay: Distribution's event broadcaster, one per
	// registry (the cloud's and the edge's), which its handlers.App starts
	// and never stops.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
	if n := runtime.NumGoroutine(); n > goroutines+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestDemoKeepAndDir keeps the working directory given, and with Keep
// serves until the context ends.
func TestDemoKeepAndDir(t *testing.T) {
	gitserver.RequireGit(t)
	if testing.Short() {
		t.Skip("runs the demo")
	}
	dir := filepath.Join(t.TempDir(), "work")
	var out lockedBuffer
	o := shortOptions(&out)
	o.Dir, o.Keep = dir, true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.OnStatusURL = func(string) {}
	done := make(chan error, 1)
	go func() { _, err := Run(ctx, o); done <- err }()
	// Run waits on ctx after the story: end it once the story is told.
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "--keep") && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before ctx ended: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "edge.yaml")); err != nil {
		t.Errorf("--dir not kept: %v", err)
	}
	// A non-empty directory is refused.
	o.Keep = false
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Run in a used directory: %v", err)
	}
}

// TestDemoFailingStep: a step that fails ends the story with an error that
// names the step, and everything is cleaned up all the same.
func TestDemoFailingStep(t *testing.T) {
	gitserver.RequireGit(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out bytes.Buffer
	o := shortOptions(&out)
	o.Lister = func(context.Context, string, release.AppSpec) (release.Found, error) {
		return release.Found{}, errors.New("renderer exploded")
	}
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "list the images of") || !strings.Contains(err.Error(), "renderer exploded") {
		t.Fatalf("Run: %v, want the failing step named", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes left: %v", kids)
	}
	if _, err := Run(context.Background(), Options{}); err == nil {
		t.Error("Run without Out and Lister: no error")
	}
}

// lockedBuffer is a buffer that Run writes to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// childProcesses lists the processes whose parent is this one.
func childProcesses(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		realtest.Missing(t, "/proc (for the child process check): "+err.Error(), "")
	}
	me := strconv.Itoa(os.Getpid())
	var kids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so split after ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == me {
			kids = append(kids, e.Name()+" "+s[:i+1])
		}
	}
	return kids
}
