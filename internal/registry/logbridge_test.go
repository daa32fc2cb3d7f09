package registry_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/registry"
)

// TestLogsGoToSlog: Distribution's logrus output reaches the slog logger,
// and a 404 is not logged as an error.
func TestLogsGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := registry.New(context.Background(), registry.Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "c"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v2/a/manifests/x", nil))
	if rec.Code != 404 {
		t.Fatalf("status %d", rec.Code)
	}
	out := buf.String()
	if !strings.Contains(out, "lib=distribution") || !strings.Contains(out, `msg="response completed with error"`) {
		t.Fatalf("distribution's request log did not reach slog:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			t.Errorf("normal operation logged above info: %s", l)
		}
	}
}
