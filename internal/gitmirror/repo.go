package gitmirror

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// repo is one mirrored upstream: its bare repository on disk, its fetch
// state, and the signals between its fetch loop and the HTTP handlers.
type repo struct {
	m        *Mirror
	id       string // "<host>/<path>" as configured, without ".git"
	key      string // hash of the lowercased id: names its lock and temp dirs
	up       Upstream
	dir      string // the bare repository
	lockPath string // outside the repository, so a broken repo can still be locked

	// gated holds the branches whose advertisement SetReady controls
	// (empty: not gated); gateMu serializes writes to served branches.
	gated  map[string]bool
	gateMu sync.Mutex

	ready     chan struct{} // closed once dir holds a usable repository
	readyOnce sync.Once
	kick      chan struct{} // asks the loop for an attempt now (pull-through)

	mu          sync.Mutex // guards the fields below
	broken      error      // set when the start-up check failed; the loop re-clones aside
	head        string
	refs        []Ref
	lastAttempt time.Time
	lastSuccess time.Time
	lastErr     string
	failures    int
	lastHeadChk time.Time
	advertised  map[string]string // gated branch → served commit (cache)
}

func (r *repo) markReady() { r.readyOnce.Do(func() { close(r.ready) }) }

func (r *repo) isReady() bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

// git runs a git command inside the repository.
func (r *repo) git(ctx context.Context, args ...string) ([]byte, error) {
	return gitCmd{args: append([]string{"--git-dir=" + r.dir}, args...)}.run(ctx)
}

func gitIn(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return gitCmd{args: append([]string{"--git-dir=" + dir}, args...)}.run(ctx)
}

// repoConfig is written into every mirror repository at creation and again
// at every start, so older repositories pick up new settings. Multi-valued
// keys are replaced as a whole.
func (r *repo) repoConfig() [][2]string {
	return [][2]string{
		{"core.bare", "true"},
		{"core.logAllRefUpdates", "false"},
		// A power cut leaves the old or the new state, never a ref pointing
		// at an object that was not yet on disk.
		{"core.fsync", "objects,derived-metadata,reference"},
		{"core.fsyncMethod", "fsync"},
		{"core.hooksPath", "/dev/null"},
		{"remote.origin.url", r.up.URL},
		{"remote.origin.tagOpt", "--no-tags"},
		// Kept old tips and a gated repository's upstream tips stay out of
		// advertisements but can be fetched by SHA.
		{"uploadpack.hideRefs", "refs/ballast"},
		{"uploadpack.allowTipSHA1InWant", "true"},
		{"uploadpack.allowReachableSHA1InWant", "true"},
		// Protocol v0 clients (go-git, `git fetch origin <sha>` with v0)
		// must reach kept tips and any old commit, as v2 does by default.
		{"uploadpack.allowAnySHA1InWant", "true"},
		{"uploadpack.allowFilter", "true"},
		// Not allowRefInWant: git 2.39 clients then fail shallow v2 clones
		// ("expected 'packfile', received 'shallow-info'").
		{"uploadpack.allowRefInWant", "false"},
		{"http.receivepack", "false"},
		// gc runs under our lock, after keep refs are settled, never on
		// its own in the background.
		{"gc.auto", "6700"},
		{"gc.autoDetach", "false"},
		{"maintenance.auto", "false"},
		{"fetch.writeCommitGraph", "false"},
		// Keep every fetched pack as a pack (one file, fsynced once)
		// instead of exploding small fetches into loose objects.
		{"fetch.unpackLimit", "1"},
	}
}

// ensureConfig (re)writes repoConfig into the repository at dir.
func (r *repo) ensureConfig(ctx context.Context, dir string) error {
	for _, kv := range r.repoConfig() {
		if _, err := gitIn(ctx, dir, "config", "--replace-all", kv[0], kv[1]); err != nil {
			return fmt.Errorf("configure %s: %w", kv[0], err)
		}
	}
	if _, err := gitIn(ctx, dir, "config", "--unset-all", "remote.origin.fetch"); err != nil && exitCode(err) != 5 {
		return fmt.Errorf("configure remote.origin.fetch: %w", err)
	}
	for _, spec := range r.refSpecs() {
		if _, err := gitIn(ctx, dir, "config", "--add", "remote.origin.fetch", spec); err != nil {
			return fmt.Errorf("configure remote.origin.fetch: %w", err)
		}
	}
	return nil
}

// remoteEnv is the environment of commands that talk to the upstream:
// credentials (read from their files on every use, so rotation needs no
// restart) travel as an http.extraHeader through GIT_CONFIG_* variables,
// never in the URL, a config file or a command line.
func (r *repo) remoteEnv() ([]string, error) {
	kv := []string{
		// Abort a transfer that has stalled, rather than waiting for the
		// overall timeout on a link that went away.
		"http.lowSpeedLimit", "1000",
		"http.lowSpeedTime", "60",
	}
	if r.up.UsernameFile != "" && !strings.HasPrefix(r.up.URL, "ssh://") {
		user, err := readSecret(r.up.UsernameFile)
		if err != nil {
			return nil, err
		}
		pass, err := readSecret(r.up.PasswordFile)
		if err != nil {
			return nil, err
		}
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		kv = append(kv,
			"http.extraHeader", "Authorization: Basic "+auth,
			// A redirect must not carry the header to another host.
			"http.followRedirects", "false")
	}
	return configEnv(kv...), nil
}

// readSecret reads a one-line secret file. The error names the file, never
// its content.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("credentials: %s must hold exactly one non-empty line", path)
	}
	return s, nil
}

// lsRemoteTimeout bounds one ref listing of an upstream.
const lsRemoteTimeout = 2 * time.Minute

// lsRemote lists the upstream's branches and tags. With withHead it lists
// everything, to learn HEAD's symref (ls-remote cannot ask the server for
// HEAD alone), which costs more on hosts with many refs/pull/*.
func (r *repo) lsRemote(ctx context.Context, withHead bool) (remoteListing, error) {
	env, err := r.remoteEnv()
	if err != nil {
		return remoteListing{}, err
	}
	// A ref listing is small: on a link that black-holes packets, give up
	// long before the fetch timeout and let the backoff retry.
	ctx, cancel := context.WithTimeout(ctx, lsRemoteTimeout)
	defer cancel()
	args := []string{"ls-remote", "--symref"}
	if !withHead {
		args = append(args, "--heads", "--tags")
	}
	args = append(args, "--", r.up.URL)
	out, err := gitCmd{args: args, env: env}.run(ctx)
	if err != nil {
		return remoteListing{}, err
	}
	return parseLsRemote(out)
}

// localRefs lists the mirrored branches and tags of the repository at dir.
func localRefs(ctx context.Context, dir string) ([]Ref, error) {
	out, err := gitIn(ctx, dir, "for-each-ref", forEachRefFormat, "refs/heads/", "refs/tags/")
	if err != nil {
		return nil, err
	}
	return parseForEachRef(out)
}

// refIncoming is where a fetch lands before the mirrored refs are moved.
// It is emptied before every fetch, so it never holds a ref that conflicts
// with one the upstream has now (upstream refs cannot conflict among
// themselves). Hidden from clients like all of refs/ballast.
const refIncoming = "refs/ballast/incoming/"

// fetch brings the upstream's branches and tags into dir. A fetch straight
// into refs/heads/ fails, every time, when the upstream renamed a ref into
// a file/directory conflict with a local one ("release" deleted, "release/2024"
// pushed, or the reverse): git cannot create refs/heads/release/2024 while
// refs/heads/release exists, and --atomic then drops every other update
// too. So the fetch lands in refIncoming, which has no old refs to conflict
// with, and the mirrored refs are then moved to match it (applyRefLines).
func (r *repo) fetch(ctx context.Context, dir string) error {
	env, err := r.remoteEnv()
	if err != nil {
		return err
	}
	if err := clearNamespace(ctx, dir, refIncoming); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	args := []string{"--git-dir=" + dir, "fetch", "--quiet", "--atomic",
		"--no-write-fetch-head", "--no-show-forced-updates", "--no-auto-maintenance", "--no-tags",
		"--", r.up.URL,
		"+refs/heads/*:" + refIncoming + "heads/*", "+refs/tags/*:" + refIncoming + "tags/*"}
	if _, err := (gitCmd{args: args, env: env, started: r.m.testHookFetchStarted}).run(ctx); err != nil {
		return err
	}
	incoming, err := listRefs(ctx, dir, refIncoming)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	headsTo := "refs/heads/"
	if r.isGated() {
		headsTo = refUpstreamHeads
	}
	want := map[string]string{}
	for name, obj := range incoming {
		rest := strings.TrimPrefix(name, refIncoming)
		switch {
		case strings.HasPrefix(rest, "heads/"):
			want[headsTo+strings.TrimPrefix(rest, "heads/")] = obj
		case strings.HasPrefix(rest, "tags/"):
			want["refs/tags/"+strings.TrimPrefix(rest, "tags/")] = obj
		}
	}
	have := map[string]string{}
	for _, ns := range []string{headsTo, "refs/tags/"} {
		m, err := listRefs(ctx, dir, ns)
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		for k, v := range m {
			have[k] = v
		}
	}
	var lines []string
	for name, obj := range want {
		if have[name] != obj {
			lines = append(lines, "update "+name+" "+obj)
		}
	}
	for name, obj := range have {
		if _, ok := want[name]; !ok {
			lines = append(lines, "delete "+name+" "+obj)
		}
	}
	if err := applyRefLines(ctx, dir, lines); err != nil {
		return fmt.Errorf("fetch: move fetched refs into place: %w", err)
	}
	if err := clearNamespace(ctx, dir, refIncoming); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	return nil
}

// listRefs returns the refs under prefix of the repository at dir:
// name → object.
func listRefs(ctx context.Context, dir, prefix string) (map[string]string, error) {
	out, err := gitIn(ctx, dir, "for-each-ref", "--format=%(objectname) %(refname)", prefix)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		obj, name, ok := strings.Cut(line, " ")
		if !ok || !isHex(obj) {
			return nil, fmt.Errorf("for-each-ref: malformed line %q", trim(line))
		}
		refs[name] = obj
	}
	return refs, nil
}

// clearNamespace deletes every ref under prefix in one transaction.
func clearNamespace(ctx context.Context, dir, prefix string) error {
	refs, err := listRefs(ctx, dir, prefix)
	if err != nil {
		return err
	}
	var lines []string
	for name, obj := range refs {
		lines = append(lines, "delete "+name+" "+obj)
	}
	sort.Strings(lines)
	return updateRefs(ctx, dir, lines)
}

// applyRefLines applies "update NAME NEW" and "delete NAME OLD" lines. Git
// cannot delete refs/heads/a and create refs/heads/a/b (or the reverse) in
// one transaction, so deletes that conflict with a name being written go
// first, in a transaction of their own; everything else follows in a
// second one. A crash between the two leaves those refs deleted, which the
// next fetch finishes (old tips are kept by then: see keepMoving).
func applyRefLines(ctx context.Context, dir string, lines []string) error {
	var written []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) >= 2 && f[0] != "delete" {
			written = append(written, f[1])
		}
	}
	var first, rest []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "delete" && conflictsWithAny(f[1], written) {
			first = append(first, l)
			continue
		}
		rest = append(rest, l)
	}
	sort.Strings(first)
	sort.Strings(rest)
	if err := updateRefs(ctx, dir, first); err != nil {
		return err
	}
	return updateRefs(ctx, dir, rest)
}

// conflictsWithAny reports whether ref name is a directory of one of names
// or one of them is a directory of it: the two cannot exist together.
func conflictsWithAny(name string, names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, name+"/") || strings.HasPrefix(name, n+"/") {
			return true
		}
	}
	return false
}

// setHead points HEAD at the upstream's default branch.
func setHead(ctx context.Context, dir, target string) error {
	if !strings.HasPrefix(target, "refs/heads/") {
		return nil
	}
	if _, err := gitIn(ctx, dir, "symbolic-ref", "HEAD", target); err != nil {
		return fmt.Errorf("set HEAD: %w", err)
	}
	return nil
}

func readHead(ctx context.Context, dir string) string {
	out, err := gitIn(ctx, dir, "symbolic-ref", "-q", "HEAD")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// updateRefs applies update-ref --stdin instructions as one transaction.
func updateRefs(ctx context.Context, dir string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	in := strings.NewReader(strings.Join(lines, "\n") + "\n")
	_, err := gitCmd{args: []string{"--git-dir=" + dir, "update-ref", "--stdin"}, stdin: in}.run(ctx)
	return err
}

// isAncestor reports whether commit a is an ancestor of (or equal to) b.
func isAncestor(ctx context.Context, dir, a, b string) bool {
	_, err := gitIn(ctx, dir, "merge-base", "--is-ancestor", a, b)
	return err == nil
}

// cleanStale removes what a killed git leaves behind: lock files, temporary
// packs and objects, and the .keep files fetch puts on packs it is still
// indexing. Only call it while holding the repository lock, when no git
// process of ours can be writing.
func cleanStale(dir string) (int, error) {
	n := 0
	objects := filepath.Join(dir, "objects") + string(filepath.Separator)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		name := d.Name()
		// Temp names only mean "temporary" among objects: elsewhere
		// (refs/heads/tmp_x) they are somebody's branch. No ref name may
		// end in ".lock", so those are stale anywhere.
		inObjects := strings.HasPrefix(p, objects)
		stale := false
		switch {
		case d.IsDir():
			if inObjects && (strings.HasPrefix(name, "incoming-") || strings.HasPrefix(name, "tmp_objdir-")) {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
				n++
				return fs.SkipDir
			}
			return nil
		case strings.HasSuffix(name, ".lock"):
			stale = true
		case inObjects && (strings.HasPrefix(name, "tmp_") || strings.HasPrefix(name, ".tmp-")):
			stale = true
		case inObjects && strings.HasSuffix(name, ".keep") && strings.HasPrefix(name, "pack-"):
			b, err := os.ReadFile(p)
			stale = err == nil && strings.HasPrefix(string(b), "fetch-pack")
		}
		if stale {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// checkRepo verifies that the repository at dir is usable: HEAD and refs
// readable and every object they reach present.
func checkRepo(ctx context.Context, dir string) error {
	if _, err := gitIn(ctx, dir, "rev-parse", "--git-dir"); err != nil {
		return err
	}
	if _, err := gitIn(ctx, dir, "for-each-ref", "--format=%(objectname)"); err != nil {
		return err
	}
	if _, err := gitIn(ctx, dir, "fsck", "--connectivity-only", "--no-dangling", "--no-progress"); err != nil {
		return err
	}
	return nil
}

// fileLock is an flock(2) lock on a file outside the repository. The kernel
// drops it when the process dies, so a crash never leaves it held.
type fileLock struct{ f *os.File }

// lockFile takes the lock at path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (l *fileLock) unlock() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

// swapDirs atomically exchanges two directories on the same file system
// (renameat2 RENAME_EXCHANGE).
func swapDirs(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// syncDir fsyncs a directory so a rename inside it survives a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
