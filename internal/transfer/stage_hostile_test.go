package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestStageNeverWritesThroughPlantedPaths: whatever was planted at a
// blob's staging paths (a symlink to a file elsewhere, a symlinked stage
// directory, a directory where the data file goes), the stage neither
// reads, truncates nor writes outside its own directory, and it does not
// wedge: a fresh stage replaces what is there.
func TestStageNeverWritesThroughPlantedPaths(t *testing.T) {
	content := []byte("0123456789abcdefghij")
	sum := sha256.Sum256(content)
	d := v1.Descriptor{Size: int64(len(content)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
	victimBytes := bytes.Repeat([]byte("precious "), 10)

	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, stageDir, victimDir string)
	}{
		{"data symlinked to a file elsewhere", func(t *testing.T, stageDir, victimDir string) {
			os.MkdirAll(stageDir, 0o700)
			if err := os.Symlink(filepath.Join(victimDir, "data"), filepath.Join(stageDir, "data")); err != nil {
				t.Fatal(err)
			}
		}},
		{"stage directory symlinked elsewhere", func(t *testing.T, stageDir, victimDir string) {
			if err := os.Symlink(victimDir, stageDir); err != nil {
				t.Fatal(err)
			}
		}},
		{"state is a FIFO", func(t *testing.T, stageDir, victimDir string) {
			os.MkdirAll(stageDir, 0o700)
			if err := syscall.Mkfifo(filepath.Join(stageDir, "state"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"data is a FIFO", func(t *testing.T, stageDir, victimDir string) {
			os.MkdirAll(stageDir, 0o700)
			if err := syscall.Mkfifo(filepath.Join(stageDir, "data"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"data is a directory", func(t *testing.T, stageDir, victimDir string) {
			os.MkdirAll(filepath.Join(stageDir, "data"), 0o700)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, victimDir := t.TempDir(), t.TempDir()
			victim := filepath.Join(victimDir, "data")
			if err := os.WriteFile(victim, victimBytes, 0o600); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, filepath.Join(root, "sha256-"+d.Digest.Hex), victimDir)
			st, err := openStage(root, d)
			if err != nil {
				t.Fatalf("open stage: %v (a planted path must not wedge the blob)", err)
			}
			if st.off != 0 {
				t.Errorf("stage resumed at %d from bytes it does not own", st.off)
			}
			st.write(content[st.off:])
			st.checkpoint()
			if err := st.finish(); err != nil {
				t.Errorf("finish: %v", err)
			}
			st.remove()
			got, _ := os.ReadFile(victim)
			if !bytes.Equal(got, victimBytes) {
				t.Fatalf("file outside the stage changed: %q", got)
			}
			if ents, _ := os.ReadDir(victimDir); len(ents) != 1 {
				t.Fatalf("files created outside the stage: %v", ents)
			}
		})
	}
}
