package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/registry"
)

// errorRecorder keeps the messages of error records.
type errorRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *errorRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *errorRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelError {
		r.mu.Lock()
		r.msgs = append(r.msgs, rec.Message)
		r.mu.Unlock()
	}
	return nil
}
func (r *errorRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *errorRecorder) WithGroup(string) slog.Handler      { return r }

// TestTransportChunkedUploads pushes with go-containerregistry, which
// uploads every blob as POST, PATCH (the bytes), PUT (the digest), through
// the in-process transport. Distribution closes the upload of a PATCH once
// more after its handler has set the status (it saves the hash state
// again); a response handed over at WriteHeader let the PUT start while
// that write was still going, and the PUT then failed "directory not
// empty" (a 500 the client retried) after logging that it could not parse
// the offset of the hash state's temporary file. The transport hands a
// body-less response over only when the handler has returned, as a
// listener would.
func TestTransportChunkedUploads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rec := &errorRecorder{}
	reg, err := registry.New(ctx, registry.Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "creds"), Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for i := range 12 {
		ref, _ := name.ParseReference(fmt.Sprintf("edge.invalid/ghcr.io/org/chunked:%d", i), name.Insecure)
		if err := remote.Write(ref, randomImage(t, 3), remote.WithTransport(reg.Transport())); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) > 0 {
		t.Errorf("the registry logged %d errors, first: %s", len(rec.msgs), rec.msgs[0])
	}
	uploads := filepath.Join(reg.StorageDir(), "docker", "registry", "v2", "repositories", "ghcr.io", "org", "chunked", "_uploads")
	left, err := os.ReadDir(uploads)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("%d upload sessions left behind in %s", len(left), uploads)
	}
}
