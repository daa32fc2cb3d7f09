package release

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/ocitar"
)

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// ResolveRevision returns the full 40-hex SHA of the commit rev names.
func ResolveRevision(ctx context.Context, repoDir, rev string) (string, error) {
	if strings.HasPrefix(rev, "-") {
		return "", fmt.Errorf("revision %q: bad revision", rev)
	}
	sha, err := git(ctx, repoDir, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("revision %q in %s: %w", rev, repoDir, err)
	}
	if !fullSHA.MatchString(sha) {
		return "", fmt.Errorf("revision %q: git answered %q, not a 40-hex SHA (sha256 repositories are not supported)", rev, sha)
	}
	return sha, nil
}

// SourceURL returns the origin remote's URL without credentials, or "" when
// the checkout has no origin.
func SourceURL(ctx context.Context, repoDir string) string {
	u, err := git(ctx, repoDir, "remote", "get-url", "origin")
	if err != nil || u == "" {
		return ""
	}
	if pu, err := url.Parse(u); err == nil && pu.User != nil {
		pu.User = nil
		return pu.String()
	}
	return u
}

// Checkout writes the tree of commit sha into a new temporary directory
// (git archive), so what is rendered is the revision, not the working tree.
// The caller removes the directory.
func Checkout(ctx context.Context, repoDir, sha string) (string, error) {
	dir, err := os.MkdirTemp("", "ballast-rev-")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "git", "-C", repoDir, "archive", "--format=tar", sha)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	xerr := extract(out, dir)
	if xerr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	if err := errors.Join(xerr, werr); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("git archive %s: %w %s", sha, err, strings.TrimSpace(errb.String()))
	}
	return dir, nil
}

func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := ocitar.CleanName(h.Name)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			// Symlinks and submodules are not followed: manifests are
			// read from regular files only.
		}
	}
}

// CommitTime returns the committer time of sha.
func CommitTime(ctx context.Context, repoDir, sha string) (time.Time, error) {
	s, err := git(ctx, repoDir, "show", "-s", "--format=%cI", sha)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("commit time of %s: %w", sha, err)
	}
	return t.UTC(), nil
}
