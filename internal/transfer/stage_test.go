package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	// Bytes after the checkpoint count after a "crash": they are hashed
	// from disk, not fetched again.
	st.write(content[8:12])
	st.close()

	st, _ = openStage(root, d)
	if st.off != 12 || st.rehashed != 4 {
		t.Fatalf("resumed at %d (%d re-hashed), want 12 (4)", st.off, st.rehashed)
	}
	if err := st.write(content[12:]); err != nil {
		t.Fatal(err)
	}
	if err := st.finish(); err != nil {
		t.Fatalf("digest after resume: %v", err)
	}
	st.close()
	// finish does not flush the state, but the data file holds every
	// byte: a restart re-hashes it and needs nothing from the link.
	st, _ = openStage(root, d)
	if st.off != d.Size || st.complete {
		t.Fatalf("after finish without checkpoint: %d %v, want %d false", st.off, st.complete, d.Size)
	}
	if err := st.finish(); err != nil {
		t.Fatal(err)
	}
	// A failed attempt checkpoints, complete state included.
	if err := st.checkpoint(); err != nil {
		t.Fatal(err)
	}
	st.close()
	st, _ = openStage(root, d)
	if !st.complete || st.off != d.Size || st.rehashed != 0 {
		t.Fatalf("complete stage not restored: %d %v %d", st.off, st.complete, st.rehashed)
	}
	st.close()

	// Whatever happened to the state, the data file's bytes are hashed
	// again from disk (never trusted, never fetched again); a data file
	// longer than the blob is cut to its size.
	for _, tc := range []struct {
		name   string
		damage func(dir string)
		want   int64
	}{
		{"bad state", func(dir string) { os.WriteFile(filepath.Join(dir, "state"), []byte("{"), 0o600) }, 8},
		{"short data", func(dir string) { os.Truncate(filepath.Join(dir, "data"), 3) }, 3},
		{"no state", func(dir string) { os.Remove(filepath.Join(dir, "state")) }, 8},
		{"other digest", func(dir string) {
			os.WriteFile(filepath.Join(dir, "state"), []byte(`{"digest":"sha256:00","size":20,"offset":8}`), 0o600)
		}, 8},
		{"offset too big", func(dir string) {
			os.WriteFile(filepath.Join(dir, "state"), []byte(`{"digest":"`+d.Digest.String()+`","size":20,"offset":99}`), 0o600)
		}, 8},
		{"data longer than blob", func(dir string) {
			os.WriteFile(filepath.Join(dir, "data"), append(append([]byte(nil), content...), "trailing"...), 0o600)
		}, 20},
		{"no data, no state", func(dir string) {
			os.Remove(filepath.Join(dir, "state"))
			os.Remove(filepath.Join(dir, "data"))
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := openStage(root, d)
			st.reset()
			st.write(content[:8])
			st.checkpoint()
			st.close()
			tc.damage(st.dir)
			st, err := openStage(root, d)
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			if st.off != tc.want || st.complete {
				t.Fatalf("resumed at %d (complete %v), want %d", st.off, st.complete, tc.want)
			}
			if fi, _ := st.f.Stat(); fi.Size() != tc.want {
				t.Fatalf("data file holds %d bytes, want %d", fi.Size(), tc.want)
			}
			if tc.want == d.Size {
				if err := st.finish(); err != nil {
					t.Fatal(err)
				}
				return
			}
			st.write(content[st.off:])
			if err := st.finish(); err != nil {
				t.Fatalf("digest after resume at %d: %v", tc.want, err)
			}
		})
	}

	// A torn tail (a power loss wrote zeros past the checkpoint) is caught
	// by the digest check and the stage starts again from 0.
	t.Run("torn tail", func(t *testing.T) {
		st, _ := openStage(root, d)
		st.reset()
		st.write(content[:8])
		st.checkpoint()
		st.close()
		os.WriteFile(filepath.Join(st.dir, "data"), append(append([]byte(nil), content[:8]...), make([]byte, 12)...), 0o600)
		st, _ = openStage(root, d)
		defer st.close()
		if st.off != d.Size {
			t.Fatalf("resumed at %d, want %d", st.off, d.Size)
		}
		if err := st.finish(); !errors.Is(err, ErrDigestMismatch) || st.off != 0 {
			t.Fatalf("torn tail: %v, offset %d; want a digest mismatch and offset 0", err, st.off)
		}
		if fi, _ := st.f.Stat(); fi.Size() != 0 {
			t.Fatalf("data file not emptied: %d bytes", fi.Size())
		}
	})

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
