package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, tc := range []struct {
		name string
		data string
		perm os.FileMode
	}{
		{"create", "one", 0o600},
		{"replace", "two, longer", 0o640},
		{"empty", "", 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteFile(p, []byte(tc.data), tc.perm); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil || string(b) != tc.data {
				t.Fatalf("content %q, %v; want %q", b, err, tc.data)
			}
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
			}
			if es, _ := os.ReadDir(dir); len(es) != 1 {
				t.Errorf("temp files left: %v", es)
			}
		})
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory: no error")
	}
}
