package lfs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ballast-dev/ballast/internal/lfs"
	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
)

// Objects imported from an export file: bytes that are not the object are
// refused and leave nothing; a good object is stored once (a second import
// does not read it); what an import killed mid-write left is cleared when
// the store opens, and a stored object survives the restart.
func TestImportObject(t *testing.T) {
	s := newSite(t)
	content := []byte("kind: ConfigMap\n")
	obj := lfsserver.ObjectOf(content)
	s.commitLFS(nil, map[string]string{"cm.yaml": string(content)})
	s.start(1)
	ctx := context.Background()

	if _, err := s.lm.ImportObject(ctx, s.url, obj.OID, obj.Size, bytes.NewReader([]byte("kind: Secret!!!\n"))); !errors.Is(err, lfs.ErrObjectMismatch) {
		t.Fatalf("wrong bytes: %v", err)
	}
	if _, err := s.lm.ImportObject(ctx, s.url, obj.OID, obj.Size, bytes.NewReader(content[:5])); !errors.Is(err, lfs.ErrObjectMismatch) {
		t.Fatalf("short bytes: %v", err)
	}
	if ok, _ := s.lm.Has(s.url, obj.OID, obj.Size); ok {
		t.Fatal("a refused object is on site")
	}
	added, err := s.lm.ImportObject(ctx, s.url, obj.OID, obj.Size, bytes.NewReader(content))
	if err != nil || !added {
		t.Fatalf("import: %v %v", added, err)
	}
	added, err = s.lm.ImportObject(ctx, s.url, obj.OID, obj.Size, failingReader{})
	if err != nil || added {
		t.Fatalf("second import read the object again: %v %v", added, err)
	}

	// A killed import: a partial temp file in the store's incoming area.
	var partial string
	filepath.WalkDir(filepath.Join(s.dataDir, "lfs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "objects" && partial == "" {
			partial = filepath.Join(filepath.Dir(p), "incoming", obj.OID+"-killed")
		}
		return nil
	})
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(partial, content[:3], 0o644)
	s.stop()
	s.start(1)
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial import left after reopening: %v", err)
	}
	if ok, err := s.lm.Has(s.url, obj.OID, obj.Size); err != nil || !ok {
		t.Fatalf("stored object after reopening: %v %v", ok, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("read") }
