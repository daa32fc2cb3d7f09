package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestStageResumeAndDistrust(t *testing.T) {
	content := []byte("0123456789abcdefghij")
	sum := sha256.Sum256(content)
	d := v1.Descriptor{Size: int64(len(content)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
	root := t.TempDir()
	st, err := openStage(root, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.write(content[:8]); err != nil {
		t.Fatal(err)
	}
	if err := st.checkpoint(); err != nil {
		t.Fatal(err)
	}
	// Bytes after the checkpoint are not trusted after a "crash".
	st.write(content[8:12])
	st.close()

	st, _ = openStage(root, d)
	if st.off != 8 {
		t.Fatalf("resumed at %d, want 8", st.off)
	}
	if err := st.write(content[8:]); err != nil {
		t.Fatal(err)
	}
	if err := st.finish(); err != nil {
		t.Fatalf("digest after resume: %v", err)
	}
	st.close()
	// finish does not flush: a crash right after it resumes from the last
	// checkpoint, and the rest is read again.
	st, _ = openStage(root, d)
	if st.complete || st.off != 8 {
		t.Fatalf("after finish without checkpoint: %d %v, want 8 false", st.off, st.complete)
	}
	st.write(content[8:])
	if err := st.finish(); err != nil {
		t.Fatal(err)
	}
	// A failed attempt checkpoints, complete state included.
	if err := st.checkpoint(); err != nil {
		t.Fatal(err)
	}
	st.close()
	st, _ = openStage(root, d)
	if !st.complete || st.off != d.Size {
		t.Fatalf("complete stage not restored: %d %v", st.off, st.complete)
	}
	st.close()

	for name, damage := range map[string]func(dir string){
		"bad state":  func(dir string) { os.WriteFile(filepath.Join(dir, "state"), []byte("{"), 0o600) },
		"short data": func(dir string) { os.Truncate(filepath.Join(dir, "data"), 3) },
		"no state":   func(dir string) { os.Remove(filepath.Join(dir, "state")) },
		"other digest": func(dir string) {
			os.WriteFile(filepath.Join(dir, "state"), []byte(`{"digest":"sha256:00","size":20,"offset":8}`), 0o600)
		},
		"offset too big": func(dir string) {
			os.WriteFile(filepath.Join(dir, "state"), []byte(`{"digest":"`+d.Digest.String()+`","size":20,"offset":99}`), 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			st, _ := openStage(root, d)
			st.reset()
			st.write(content[:8])
			st.checkpoint()
			st.close()
			damage(st.dir)
			st, _ = openStage(root, d)
			defer st.close()
			if st.off != 0 || st.complete {
				t.Fatalf("damaged stage trusted: offset %d", st.off)
			}
		})
	}

	// A wrong digest is detected and the stage emptied.
	st, _ = openStage(root, d)
	st.reset()
	bad := append([]byte(nil), content...)
	bad[0] = 'X'
	st.write(bad)
	if err := st.finish(); err == nil || st.off != 0 {
		t.Fatalf("bad bytes accepted: %v", err)
	}
	st.close()

	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(st.dir, "data"), old, old)
	if err := PruneStaging(root, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.dir); !os.IsNotExist(err) {
		t.Fatal("old stage not pruned")
	}
}
