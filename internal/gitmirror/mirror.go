// Package gitmirror keeps bare copies of upstream git repositories next to
// Argo CD and serves them read-only over smart HTTP, whether or not the
// upstream is reachable.
//
// Each configured upstream gets a bare repository under
// <dataDir>/git/<host>/<path>.git holding its branches and tags (explicit
// refspecs, not --mirror) and its HEAD symref. A loop per repository polls
// the upstream with ls-remote and fetches only when something changed, with
// exponential backoff and jitter while the upstream fails. Old tips that a
// force-push or branch deletion would orphan are kept under the hidden
// refs/ballast/keep/ namespace so a revision deployed before stays
// fetchable by SHA. A gated repository (Upstream.Gated) advertises its gated
// branches only at the revision its owner declares ready (SetReady); see
// gate.go.
package gitmirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/datadir"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/redact"
)

// Upstream is one repository to mirror.
type Upstream struct {
	// URL is the http, https or ssh URL of the upstream, without credentials.
	URL string
	// UsernameFile and PasswordFile, when set, hold the HTTP credentials
	// (one line each). They are read on every fetch.
	UsernameFile, PasswordFile string
	// PollInterval is the time between polls while the upstream answers.
	// The default value is one minute.
	PollInterval time.Duration
	// Gated lists branches ("refs/heads/…") that are advertised only at
	// the revision SetReady sets; the upstream tips stay hidden under
	// refs/ballast/upstream/heads/. Empty: served as fetched.
	Gated []string
	// Track lists the refs ("refs/heads/main", "refs/tags/v1") whose tips
	// dependency discovery reads .gitmodules at (the revisions that get
	// bundles; older ones' submodules come from their bundles). Empty:
	// every branch tip.
	Track []string
}

// Options configure a Mirror. Zero values take the documented defaults.
type Options struct {
	// DataDir is the daemon's data directory; repositories live in DataDir/git.
	DataDir   string
	Upstreams []Upstream
	Logger    *slog.Logger
	// Metrics, when set, receives the mirror's Prometheus metrics.
	Metrics prometheus.Registerer

	// CloneWait is how long a request for a repository that was never
	// fetched waits for its first clone. The default value is 10s.
	CloneWait time.Duration
	// FetchTimeout bounds one clone or fetch, as a last resort: stalled
	// transfers are aborted sooner (under 1 KB/s for 60s), and a first
	// clone over a slow satellite link may rightly take hours (git cannot
	// resume one). The default value is 12h.
	FetchTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between failed attempts. The
	// default values are min(PollInterval, 10s) and max(PollInterval, 5m).
	RetryMin, RetryMax time.Duration
	// MayPoll, when set, is asked before each scheduled poll: false skips
	// it (the link policy keeps git off the link outside its windows).
	// Explicit Poll calls are not asked.
	MayPoll func() bool
	// DepsFetched, when set, is called (without blocking) after commits of
	// a dependency repository were fetched or loaded and kept: readers of
	// its commits (the LFS store) look again.
	DepsFetched func()
	// HeadCheckInterval is how often HEAD's symref is re-read when the set
	// of branches did not change. The default value is 1h.
	HeadCheckInterval time.Duration

	// MaxConcurrentRequests bounds the git processes serving clients at
	// once; further requests queue. The default value is 16.
	MaxConcurrentRequests int
	// RequestTimeout bounds one served request. The default value is 10m.
	RequestTimeout time.Duration
	// MaxRequestBody bounds a (decompressed) upload-pack request. The
	// default value is 10 MiB, as git http-backend.
	MaxRequestBody int64
	// MaxSpooledRequests bounds the upload-pack request bodies over 64 KiB
	// being received at once (each spooled to disk, up to MaxRequestBody);
	// further ones get 503. The default value is 2×MaxConcurrentRequests.
	MaxSpooledRequests int
	// MaxReadingRequests bounds the upload-pack request bodies being
	// received at once, whatever their size (each holds up to 64 KiB of
	// memory); further ones get 503. Real bodies arrive in milliseconds,
	// so only stalled clients fill it. The default value is
	// 4×MaxConcurrentRequests.
	MaxReadingRequests int
}

// Mirror is the set of mirrored repositories.
type Mirror struct {
	opts    Options
	log     *slog.Logger
	root    string // DataDir/git
	repos   []*repo
	byKey   map[string]*repo // lowercased id → repo
	metrics *metrics
	sem     chan struct{} // serving concurrency
	spools  chan struct{} // large request bodies being received
	readers chan struct{} // request bodies being received
	started chan struct{}

	openOnce sync.Once
	openErr  error
	openedAt time.Time // set by Open, read by the loops after it

	subMu sync.Mutex
	subs  map[*subscriber]struct{}

	// deps are the dependency repositories (submodules, remote bases):
	// see deps.go.
	deps *deps

	// testHookFetchStarted, when set, is called with the pid of every
	// upstream fetch (tests kill it mid-way).
	testHookFetchStarted func(pid int)
}

// ErrUnknownRepo is returned for a repository that is not configured.
var ErrUnknownRepo = errors.New("repository not configured")

// ErrNotReady is returned for a configured repository that has no local
// copy yet (its first clone has not completed).
var ErrNotReady = errors.New("repository not mirrored yet")

// New validates opts and returns a Mirror. It does no I/O; Run does.
func New(opts Options) (*Mirror, error) {
	if opts.DataDir == "" {
		return nil, errors.New("gitmirror: DataDir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.CloneWait, 10*time.Second)
	def(&opts.FetchTimeout, 12*time.Hour)
	def(&opts.HeadCheckInterval, time.Hour)
	def(&opts.RequestTimeout, 10*time.Minute)
	if opts.MaxConcurrentRequests <= 0 {
		opts.MaxConcurrentRequests = 16
	}
	if opts.MaxRequestBody <= 0 {
		opts.MaxRequestBody = 10 << 20
	}
	if opts.MaxSpooledRequests <= 0 {
		opts.MaxSpooledRequests = 2 * opts.MaxConcurrentRequests
	}
	if opts.MaxReadingRequests <= 0 {
		opts.MaxReadingRequests = 4 * opts.MaxConcurrentRequests
	}
	root, err := filepath.Abs(datadir.Of(opts.DataDir).Git())
	if err != nil {
		return nil, fmt.Errorf("gitmirror: %w", err)
	}
	m := &Mirror{
		opts:    opts,
		log:     opts.Logger,
		root:    root,
		byKey:   map[string]*repo{},
		sem:     make(chan struct{}, opts.MaxConcurrentRequests),
		spools:  make(chan struct{}, opts.MaxSpooledRequests),
		readers: make(chan struct{}, opts.MaxReadingRequests),
		started: make(chan struct{}),
		subs:    map[*subscriber]struct{}{},
	}
	for _, up := range opts.Upstreams {
		if err := validateUpstreamURL(up.URL); err != nil {
			return nil, fmt.Errorf("gitmirror: %w", err)
		}
		id, err := imageref.RepoID(up.URL)
		if err != nil {
			return nil, fmt.Errorf("gitmirror: %w", err)
		}
		if err := validateRepoID(id); err != nil {
			return nil, fmt.Errorf("gitmirror: %s: %w", up.URL, err)
		}
		key := strings.ToLower(id)
		if _, dup := m.byKey[key]; dup {
			return nil, fmt.Errorf("gitmirror: %s is configured twice", up.URL)
		}
		if up.PollInterval <= 0 {
			up.PollInterval = time.Minute
		}
		if up.UsernameFile != "" && strings.HasPrefix(up.URL, "ssh://") {
			opts.Logger.Warn("git mirror: credential files are for http(s); ssh uses the daemon's ssh keys (HOME, GIT_SSH_COMMAND)",
				"url", up.URL)
		}
		sum := sha256.Sum256([]byte(key))
		r := &repo{
			m:        m,
			id:       id,
			up:       up,
			key:      hex.EncodeToString(sum[:12]),
			dir:      filepath.Join(root, filepath.FromSlash(id)+".git"),
			lockPath: filepath.Join(root, ".locks", hex.EncodeToString(sum[:12])+".lock"),
			ready:    make(chan struct{}),
			kick:     make(chan struct{}, 1),
		}
		for _, g := range up.Gated {
			if err := validateGatedRef(g); err != nil {
				return nil, fmt.Errorf("gitmirror: %s: %w", up.URL, err)
			}
			if r.gated == nil {
				r.gated = map[string]bool{}
			}
			r.gated[g] = true
		}
		if !strings.HasPrefix(r.dir, root+string(filepath.Separator)) {
			return nil, fmt.Errorf("gitmirror: %s: repository path escapes the data directory", up.URL)
		}
		m.repos = append(m.repos, r)
		m.byKey[key] = r
	}
	m.metrics = newMetrics(m, opts.Metrics)
	m.deps = newDeps(m)
	return m, nil
}

// validateUpstreamURL accepts http, https and ssh URLs only, never anything
// git could read as an option or a transport helper (ext::, file::).
func validateUpstreamURL(u string) error {
	if u == "" || strings.HasPrefix(u, "-") || strings.ContainsAny(u, " \t\r\n\x00") {
		return fmt.Errorf("upstream URL %q: not a URL", u)
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || rest == "" {
		return fmt.Errorf("upstream URL %q: want http://, https:// or ssh://", u)
	}
	switch scheme {
	case "http", "https", "ssh":
	default:
		return fmt.Errorf("upstream URL %q: scheme %q not allowed", u, scheme)
	}
	if strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("upstream URL %q: control character", redact.Text(u))
	}
	if at := strings.LastIndex(rest[:strings.IndexAny(rest+"/", "/")], "@"); at >= 0 && (scheme != "ssh" || strings.Contains(rest[:at], ":")) {
		return fmt.Errorf("upstream URL for %s: credentials belong in files, not the URL", scheme)
	}
	return nil
}

// validateRepoID rejects ids that would place a repository somewhere odd on
// disk: inside another repository or among the mirror's own directories.
func validateRepoID(id string) error {
	segs := strings.Split(id, "/")
	if strings.HasPrefix(segs[0], ".") {
		return fmt.Errorf("host %q not allowed", segs[0])
	}
	for i, s := range segs {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") {
			return fmt.Errorf("path segment %q not allowed", s)
		}
		if i < len(segs)-1 && strings.HasSuffix(strings.ToLower(s), ".git") {
			return fmt.Errorf("path segment %q: only the last segment may end in .git", s)
		}
	}
	return nil
}

// Open recovers every existing repository: leftovers of interrupted git
// processes and clones removed, connectivity checked. A broken repository
// keeps serving what it can and is re-cloned aside by the next poll. Open
// runs once (later calls return the first result); Run calls it. A process
// that only polls (sync --once) calls Open, then Poll.
func (m *Mirror) Open(ctx context.Context) error {
	m.openOnce.Do(func() {
		if m.openErr = m.ensureDirs(); m.openErr != nil {
			return
		}
		for _, r := range m.repos {
			if err := r.recover(ctx); err != nil {
				if ctx.Err() != nil {
					m.openErr = ctx.Err()
					return
				}
				m.log.Error("git mirror: repository check failed; it will be re-cloned aside and swapped",
					"repo", r.id, "err", err)
			}
		}
		if err := m.deps.open(ctx); err != nil {
			m.openErr = err
			return
		}
		m.openedAt = time.Now()
		close(m.started)
	})
	return m.openErr
}

// Run opens the mirror (see Open), then polls each upstream until ctx is
// done. Serving works from the moment Open is done (see Started) and never
// waits on an upstream.
func (m *Mirror) Run(ctx context.Context) error {
	if err := m.Open(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.deps.loop(ctx)
	}()
	for _, r := range m.repos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// ensureDirs creates the mirror's own directories (idempotent).
func (m *Mirror) ensureDirs() error {
	for _, d := range []string{m.root, filepath.Join(m.root, ".locks"), filepath.Join(m.root, ".tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("gitmirror: %w", err)
		}
	}
	return nil
}

// Started is closed once Run has recovered the existing repositories.
func (m *Mirror) Started() <-chan struct{} { return m.started }

// recover checks an existing repository at start-up. A missing one is left
// to the loop (first clone); a broken one keeps serving what it can until
// the loop has re-cloned it aside.
func (r *repo) recover(ctx context.Context) error {
	lk, err := lockFile(ctx, r.lockPath)
	if err != nil {
		return err
	}
	defer lk.unlock()
	// Clones that were interrupted: never trusted, redone. Only this
	// repository's, under its lock: another process may be cloning another.
	if old, err := filepath.Glob(filepath.Join(r.m.root, ".tmp", "clone-"+r.key+"-*")); err == nil {
		for _, p := range old {
			_ = os.RemoveAll(p)
		}
	}
	if _, err := os.Stat(r.dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	n, err := cleanStale(r.dir)
	if err != nil {
		r.setBroken(err)
		return err
	}
	if n > 0 {
		r.m.log.Warn("git mirror: removed leftovers of an interrupted git process", "repo", r.id, "files", n)
	}
	if err := r.ensureConfig(ctx, r.dir); err != nil {
		r.setBroken(err)
		return err
	}
	if err := checkRepo(ctx, r.dir); err != nil {
		r.setBroken(err)
		r.markReady() // serve what there is meanwhile
		return err
	}
	// Gating switched on or off since the last run, or a crash between a
	// fetch and the publication of its branches: finish it now.
	if err := r.migrateGate(ctx); err != nil {
		r.setBroken(err)
		return err
	}
	if err := r.publishBranches(ctx, r.dir); err != nil {
		r.setBroken(err)
		return err
	}
	refs, err := r.upstreamRefs(ctx, r.dir)
	if err != nil {
		r.setBroken(err)
		return err
	}
	r.mu.Lock()
	r.refs, r.head = refs, readHead(ctx, r.dir)
	r.mu.Unlock()
	r.markReady()
	return nil
}

func (r *repo) setBroken(err error) {
	r.mu.Lock()
	r.broken = err
	r.mu.Unlock()
}

// loop polls the upstream until ctx is done.
func (r *repo) loop(ctx context.Context) {
	failures := 0
	since := r.m.openedAt
	for {
		var err error
		if mp := r.m.opts.MayPoll; mp == nil || mp() {
			err = r.m.pollOnce(ctx, r, since)
		}
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			failures++
			wait = r.backoff(failures)
		} else {
			failures = 0
			// ±10% so that repositories polled on the same interval spread out.
			wait = jitter(r.up.PollInterval, 0.9, 1.1)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.kick:
			t.Stop()
		}
		since = time.Now()
	}
}

// backoff doubles from RetryMin up to RetryMax, with full jitter in its
// upper half so that many edges coming back online do not fetch in step.
func (r *repo) backoff(failures int) time.Duration {
	lo, hi := r.m.opts.RetryMin, r.m.opts.RetryMax
	if lo <= 0 {
		lo = min(r.up.PollInterval, 10*time.Second)
	}
	if hi <= 0 {
		hi = max(r.up.PollInterval, 5*time.Minute)
	}
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	return jitter(min(d, hi), 0.5, 1.0)
}

func jitter(d time.Duration, lo, hi float64) time.Duration {
	return time.Duration(float64(d) * (lo + rand.Float64()*(hi-lo)))
}

// pollOnce runs one attempt and records its outcome. Failures are logged
// once per change of state: offline is the normal case on an edge site.
//
// A loop attempt (since set) that finds another poll (Poll) succeeded after
// it was scheduled does nothing: the upstream was just asked.
func (m *Mirror) pollOnce(ctx context.Context, r *repo, since time.Time) error {
	start := time.Now()
	changed, skipped, err := r.poll(ctx, since)
	if skipped {
		return nil
	}
	m.metrics.fetchAttempt(r.id)
	m.metrics.fetchDone(r.id, time.Since(start), err)
	if ctx.Err() != nil {
		return err
	}
	r.mu.Lock()
	prevFailures := r.failures
	r.lastAttempt = start
	if err != nil {
		r.failures++
		r.lastErr = err.Error()
	} else {
		r.failures = 0
		r.lastErr = ""
		r.lastSuccess = time.Now()
	}
	refs, head := r.refs, r.head
	r.mu.Unlock()
	switch {
	case err != nil && prevFailures == 0:
		m.log.Warn("git mirror: upstream fetch failing; serving the local copy", "repo", r.id, "err", err)
	case err != nil:
		m.log.Debug("git mirror: upstream fetch still failing", "repo", r.id, "failures", prevFailures+1, "err", err)
	case prevFailures > 0:
		m.log.Info("git mirror: upstream fetch recovered", "repo", r.id, "after_failures", prevFailures)
	}
	if changed {
		m.log.Info("git mirror: refs updated", "repo", r.id, "refs", len(refs), "head", head)
		m.publish(RefsChanged{Repo: r.id, URL: r.up.URL, Head: head, Refs: refs, At: time.Now()})
	}
	return err
}

// Poll runs one poll of the repository now and waits for it (sync --once
// and tests use it). The fetch loop's own schedule is unaffected.
func (m *Mirror) Poll(ctx context.Context, repoID string) error {
	r, err := m.lookup(repoID)
	if err != nil {
		return err
	}
	return m.pollOnce(ctx, r, time.Time{})
}

// poll brings the local copy up to date: first clone, re-clone of a broken
// copy, or update. It reports whether the refs changed.
func (r *repo) poll(ctx context.Context, since time.Time) (changed, skipped bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.m.opts.FetchTimeout)
	defer cancel()
	if err := r.m.ensureDirs(); err != nil {
		return false, false, err
	}
	lk, err := lockFile(ctx, r.lockPath)
	if err != nil {
		return false, false, err
	}
	defer lk.unlock()
	r.mu.Lock()
	broken := r.broken
	recent := !since.IsZero() && r.lastSuccess.After(since)
	r.mu.Unlock()
	if recent {
		return false, true, nil
	}
	_, statErr := os.Stat(r.dir)
	switch {
	case errors.Is(statErr, os.ErrNotExist):
		return true, false, r.cloneInto(ctx, false)
	case broken != nil:
		return true, false, r.cloneInto(ctx, true)
	default:
		changed, err := r.update(ctx)
		return changed, false, err
	}
}

// cloneInto clones the upstream into a temp directory and renames it into
// place only once complete, so a half clone is never served. With aside,
// the existing (broken) repository keeps serving until the swap and its
// kept tips are carried over where its objects allow.
func (r *repo) cloneInto(ctx context.Context, aside bool) error {
	tmp, err := os.MkdirTemp(filepath.Join(r.m.root, ".tmp"), "clone-"+r.key+"-")
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := (gitCmd{args: []string{"init", "--quiet", "--bare", "--template=", tmp}}).run(ctx); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	if err := r.ensureConfig(ctx, tmp); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	listing, err := r.lsRemote(ctx, true)
	if err != nil {
		return err
	}
	if err := r.fetch(ctx, tmp); err != nil {
		return err
	}
	head := chooseHead(listing)
	if err := setHead(ctx, tmp, head); err != nil {
		return err
	}
	if aside {
		r.carryKeptTips(ctx, tmp)
	}
	if r.isGated() {
		// A fresh copy advertises no gated branch until SetReady.
		if err := r.publishBranches(ctx, tmp); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if aside {
			r.carryAdvertised(ctx, tmp)
		}
		if _, err := gitIn(ctx, tmp, "config", gatedConfigKey, "true"); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
	}
	// A reachability bitmap lets upload-pack answer clones without walking
	// every object: what makes serving as fast as the upstream's own
	// (repacked) copy. Later fetches add packs; gc --auto folds them in.
	if _, err := gitIn(ctx, tmp, "repack", "-a", "-d", "-q", "--write-bitmap-index"); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	refs, err := r.upstreamRefs(ctx, tmp)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.dir), 0o755); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	if aside {
		// One atomic exchange: a crash leaves either the old or the new
		// copy in place, never neither. tmp then holds the old copy and
		// is removed by the deferred RemoveAll.
		if err := swapDirs(tmp, r.dir); err != nil {
			return fmt.Errorf("swap: %w", err)
		}
	} else if err := os.Rename(tmp, r.dir); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	if err := syncDir(filepath.Dir(r.dir)); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	r.mu.Lock()
	r.broken = nil
	r.refs, r.head = refs, head
	r.lastHeadChk = time.Now()
	r.mu.Unlock()
	if r.isGated() {
		if err := r.loadAdvertised(ctx); err != nil {
			return err
		}
	}
	r.markReady()
	r.m.log.Info("git mirror: repository cloned", "repo", r.id, "refs", len(refs), "replaced_broken", aside)
	return nil
}

// carryKeptTips copies kept rollback targets from the broken repository,
// as far as its objects are still intact. Best effort: a tip that cannot
// be read is logged and dropped.
func (r *repo) carryKeptTips(ctx context.Context, into string) {
	out, err := gitIn(ctx, r.dir, "for-each-ref", "--format=%(refname)", refKeepPrefix)
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		return
	}
	_, err = gitCmd{
		args: []string{"--git-dir=" + into, "fetch", "--quiet", "--no-write-fetch-head", "--no-auto-maintenance",
			"--", r.dir, "+" + refKeepPrefix + "*:" + refKeepPrefix + "*"},
		env: []string{"GIT_ALLOW_PROTOCOL=file"},
	}.run(ctx)
	if err != nil {
		r.m.log.Warn("git mirror: could not carry kept tips over from the broken copy", "repo", r.id, "err", err)
	}
}

// update polls the upstream and fetches when its branches or tags differ.
// Before fetching, every local tip that will move or vanish is kept under
// refs/ballast/keep/; after, the ones that moved fast-forward are released.
func (r *repo) update(ctx context.Context) (bool, error) {
	r.mu.Lock()
	headDue := time.Since(r.lastHeadChk) >= r.m.opts.HeadCheckInterval
	r.mu.Unlock()
	before, err := r.upstreamRefs(ctx, r.dir)
	if err != nil {
		if ctx.Err() == nil {
			// Refs that cannot be read: re-clone aside at the next poll.
			r.setBroken(err)
		}
		return false, err
	}
	local := refMap(before)
	listing, err := r.lsRemote(ctx, headDue)
	if err != nil {
		return false, err
	}
	if !headDue && branchNames(listing.refs) != branchNames(local) {
		// Branches came or went: the default branch may have changed too.
		if listing, err = r.lsRemote(ctx, true); err != nil {
			return false, err
		}
		headDue = true
	}
	changed := false
	if !sameRefs(local, listing.refs) {
		kept, err := r.keepMoving(ctx, local, listing.refs)
		if err != nil {
			return false, err
		}
		if err := r.fetch(ctx, r.dir); err != nil {
			return false, err
		}
		if err := r.settleKept(ctx, local, kept); err != nil {
			return false, err
		}
		if err := r.publishBranches(ctx, r.dir); err != nil {
			return false, err
		}
		changed = true
	}
	if headDue && listing.head != "" {
		if listing.head != readHead(ctx, r.dir) {
			if err := setHead(ctx, r.dir, listing.head); err != nil {
				return false, err
			}
			changed = true
		}
	}
	after, err := r.upstreamRefs(ctx, r.dir)
	if err != nil {
		return false, err
	}
	head := readHead(ctx, r.dir)
	r.mu.Lock()
	r.refs, r.head = after, head
	if headDue {
		r.lastHeadChk = time.Now()
	}
	r.mu.Unlock()
	if changed {
		// Loose objects and packs pile up with every fetch; gc only after
		// keep refs are settled, and under our lock.
		if _, err := r.git(ctx, "gc", "--auto", "--quiet"); err != nil {
			r.m.log.Warn("git mirror: gc failed", "repo", r.id, "err", err)
		}
	}
	return changed, nil
}

// keepMoving writes a keep ref for every local tip that the upstream has
// moved or deleted. It returns the kept object names by ref.
func (r *repo) keepMoving(ctx context.Context, local, upstream map[string]string) (map[string]string, error) {
	kept := map[string]string{}
	var lines []string
	for name, old := range local {
		if upstream[name] == old {
			continue
		}
		kept[name] = old
		lines = append(lines, "update "+refKeepPrefix+old+" "+old)
	}
	if err := updateRefs(ctx, r.dir, dedupeKeepLines(lines)); err != nil {
		return nil, fmt.Errorf("keep old tips: %w", err)
	}
	return kept, nil
}

// settleKept runs after a fetch. A tip that moved fast-forward is still
// reachable and its keep ref is released; a tip that was rewritten or
// deleted stays kept. A ref that changed between ls-remote and fetch is
// kept now: its objects are still there, since gc has not run.
func (r *repo) settleKept(ctx context.Context, before map[string]string, kept map[string]string) error {
	afterRefs, err := r.upstreamRefs(ctx, r.dir)
	if err != nil {
		return err
	}
	after := refMap(afterRefs)
	var lines []string
	for name, old := range before {
		now, exists := after[name]
		if now == old {
			continue
		}
		_, preKept := kept[name]
		ff := exists && isAncestor(ctx, r.dir, old, now)
		switch {
		case ff && preKept:
			lines = append(lines, "delete "+refKeepPrefix+old)
		case !ff && !preKept:
			lines = append(lines, "update "+refKeepPrefix+old+" "+old)
		}
		if !ff {
			r.m.log.Info("git mirror: upstream rewrote or deleted a ref; old tip kept", "repo", r.id, "ref", name, "old", old, "new", now)
		}
	}
	// A tip kept for one ref may still be needed by another (two branches
	// at the same commit, one deleted): never release a kept object that
	// some other rewritten ref also needed.
	lines = dedupeKeepLines(lines)
	if err := updateRefs(ctx, r.dir, lines); err != nil {
		return fmt.Errorf("settle kept tips: %w", err)
	}
	return nil
}

// dedupeKeepLines drops deletes of objects that another line updates.
func dedupeKeepLines(lines []string) []string {
	keep := map[string]bool{}
	for _, l := range lines {
		if f := strings.Fields(l); f[0] == "update" {
			keep[f[1]] = true
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		if (f[0] == "delete" && keep[f[1]]) || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// lookup finds a configured repository by id ("host/path", with or without
// ".git", any case) or by upstream URL.
func (m *Mirror) lookup(idOrURL string) (*repo, error) {
	id := idOrURL
	if strings.Contains(idOrURL, "://") {
		var err error
		if id, err = imageref.RepoID(idOrURL); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnknownRepo, err)
		}
	}
	id = strings.TrimSuffix(strings.Trim(id, "/"), ".git")
	if r, ok := m.byKey[strings.ToLower(id)]; ok {
		return r, nil
	}
	if r := m.deps.lookup(strings.ToLower(id)); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownRepo, trim(idOrURL))
}

// waitReady waits until r has a local copy, asking its loop for an attempt
// now (pull-through) and giving up after CloneWait.
func (m *Mirror) waitReady(ctx context.Context, r *repo) error {
	if r.isReady() {
		return nil
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
	t := time.NewTimer(m.opts.CloneWait)
	defer t.Stop()
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		r.mu.Lock()
		last := r.lastErr
		r.mu.Unlock()
		if last != "" {
			return fmt.Errorf("%w (last fetch: %s)", ErrNotReady, last)
		}
		return ErrNotReady
	}
}
