package lfsserver_test

import (
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
)

// TestUploadAndRestart checks the helper itself: a built server takes an
// upload, and survives a stop and start on the same address.
func TestUploadAndRestart(t *testing.T) {
	s := lfsserver.New(t)
	obj := s.Upload(t, "fleet/apps", []byte("hello lfs\n"))
	if obj.Size != 10 {
		t.Fatalf("size %d", obj.Size)
	}
	s.Stop()
	s.Start(t)
	// Uploading again finds it present (no upload action).
	s.Upload(t, "fleet/apps", []byte("hello lfs\n"))
}
