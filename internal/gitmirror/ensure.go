package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnsureRepo returns the bare repository of a configured upstream, creating
// an empty one (configured as a clone would be, HEAD at refs/heads/main)
// when it was never fetched: a site that only ever gets updates on a drive
// (`ballast import`) has no clone to start from. Call it after Open, while
// no daemon runs on the data dir.
func (m *Mirror) EnsureRepo(ctx context.Context, idOrURL string) (string, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return "", err
	}
	lk, err := lockFile(ctx, r.lockPath)
	if err != nil {
		return "", err
	}
	defer lk.unlock()
	if _, err := os.Stat(r.dir); err == nil {
		return r.dir, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Join(m.root, ".tmp"), "init-"+r.key+"-")
	if err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := (gitCmd{args: []string{"init", "--quiet", "--bare", "--template=", tmp}}).run(ctx); err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	if err := r.ensureConfig(ctx, tmp); err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	if err := setHead(ctx, tmp, "refs/heads/main"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(r.dir), 0o755); err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	if err := os.Rename(tmp, r.dir); err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	if err := syncDir(filepath.Dir(r.dir)); err != nil {
		return "", err
	}
	r.markReady()
	return r.dir, nil
}
