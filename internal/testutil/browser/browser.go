// Package browser runs a real headless Chromium (Debian's `chromium`) for
// tests, driven through the DevTools protocol with chromedp.
package browser

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/chromedp/chromedp"
)

// startTimeout bounds the browser's launch: a wedged launch must fail the
// test, not hang it.
const startTimeout = 60 * time.Second

// Require returns the path of chromium. Without it the test skips, loudly,
// or fails where real components are required (realtest: CI).
func Require(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	realtest.Missing(tb, "chromium", "apt-get install chromium; the status page's browser test did not run")
	return ""
}

// Tab is one page in a fresh headless browser with its own profile.
type Tab struct {
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// Start launches headless chromium with a fresh user-data-dir and opens
// one tab (1280×900). The browser stops when the test ends.
func Start(tb testing.TB) *Tab {
	tb.Helper()
	path := Require(tb)
	var out syncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	// chromedp ties the browser's life to the context of the first Run,
	// so the launch is bounded by a timer rather than a context deadline.
	watchdog := time.AfterFunc(startTimeout, cancelAlloc)
	err := chromedp.Do(ctx)
	watchdog.Stop()
	tb.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser gracefully
		cancelTab()
		cancelAlloc() // kills it if it did not close, and waits for it
	})
	if err != nil {
		tb.Fatalf("browser: start %s: %v\n%s", path, err, out.String())
	}
	t := &Tab{ctx: ctx}
	go t.watchConsole()
	return t
}

// watchConsole records what a page should never produce: uncaught
// exceptions, console errors and browser-log errors (a CSP violation, a
// failed load).
func (t *Tab) watchConsole() {
	for m, err := range chromedp.Console(t.ctx) {
		if err != nil {
			return
		}
		if m.Type == chromedp.ConsoleError || m.IsException() {
			t.mu.Lock()
			s := m.String()
			if m.URL != "" {
				s += fmt.Sprintf(" (%s:%d:%d)", m.URL, m.Line+1, m.Column+1)
			}
			if m.Stack != nil && len(m.Stack.CallFrames) > 0 {
				f := m.Stack.CallFrames[0]
				s += fmt.Sprintf(" at %s (%s:%d)", f.FunctionName, f.URL, f.LineNumber+1)
			}
			t.problems = append(t.problems, s)
			t.mu.Unlock()
		}
	}
}

// Context is the tab's chromedp context. Derive timeouts from it for
// chromedp.Run and chromedp.Do.
func (t *Tab) Context() context.Context { return t.ctx }

// Problems returns the errors and exceptions the tab's pages reported.
func (t *Tab) Problems() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.problems...)
}

// Screenshot saves a full-page PNG of the tab as test/artifacts/<name> at
// the module root (gitignored; CI keeps it as an artifact) and returns
// its path.
func (t *Tab) Screenshot(tb testing.TB, name string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("browser: screenshot: %v", err)
	}
	dir := filepath.Join(moduleRoot(tb), "test", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("browser: screenshot saved to %s", p)
	return p
}

// moduleRoot walks up from the test's directory to go.mod.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			tb.Fatalf("browser: no go.mod above %s", dir)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
