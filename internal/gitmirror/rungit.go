package gitmirror

import (
	"context"
	"io"
	"net/url"
	"strings"
)

// RunGit runs `git --git-dir=<local copy> args…` for a repository (by id or
// upstream URL) with the mirror's environment: built from scratch, hooks
// and helpers disabled, http/https/ssh only. It is for readers of the
// mirror's repositories that are not the mirror (the LFS store runs
// `git ls-tree`, `git cat-file` and `git lfs fetch` through it); git writes
// to the repository stay the mirror's.
//
// With remote, the command may talk to the upstream: the repository's
// credentials are added as for a fetch, but their Authorization header is
// scoped to the upstream URL's origin (http.<origin>/.extraHeader), so a
// request to another host (an LFS endpoint named by .lfsconfig) never
// carries it. stdin may be nil. A repository with no local copy yet returns
// ErrNotReady without waiting.
func (m *Mirror) RunGit(ctx context.Context, idOrURL string, remote bool, stdin io.Reader, args ...string) ([]byte, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return nil, err
	}
	if !r.isReady() {
		return nil, ErrNotReady
	}
	var env []string
	if remote {
		if env, err = r.remoteEnv(); err != nil {
			return nil, err
		}
		env = scopeExtraHeader(env, r.up.URL)
	}
	return gitCmd{args: append([]string{"--git-dir=" + r.dir}, args...), env: env, stdin: stdin}.run(ctx)
}

// scopeExtraHeader rewrites the http.extraHeader entries of a configEnv
// environment to http.<scheme>://<host>/.extraHeader.
func scopeExtraHeader(env []string, upstream string) []string {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return env
	}
	scoped := "http." + u.Scheme + "://" + u.Host + "/.extraHeader"
	out := make([]string, len(env))
	for i, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "GIT_CONFIG_KEY_") && v == "http.extraHeader" {
			kv = k + "=" + scoped
		}
		out[i] = kv
	}
	return out
}
