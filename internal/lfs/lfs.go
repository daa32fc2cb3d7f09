package lfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/slots"
)

// Git is what the LFS store needs of the git mirror (*gitmirror.Mirror):
// git commands against its local copies (see gitmirror.Mirror.RunGit),
// and a repository's branches and tags as the upstream has them (for a
// gated repository not what is advertised: gitmirror.Mirror.RefTips).
type Git interface {
	RunGit(ctx context.Context, idOrURL string, remote bool, stdin io.Reader, args ...string) ([]byte, error)
	RefTips(ctx context.Context, idOrURL string) ([]gitmirror.Ref, error)
}

// Repo is one mirrored repository whose LFS objects are kept: those of
// every revision reachable from the refs the mirror holds (branches, tags
// and kept tips). That is what Argo CD asks for: with enableLfs its
// repo-server runs `git lfs fetch --all`, which walks the whole history of
// every ref it fetched and fails on a single object the server lacks.
//
// A dependency repository (a submodule's or a remote base's, which the git
// mirror holds only the needed commits of) sets Commits: its kept objects
// are those the trees of these commits point at, no history, as a
// checkout of those commits (`git submodule update`, kustomize's fetch of
// a remote base) smudges them.
type Repo struct {
	URL string
	// Commits, when set, returns the commits whose objects are kept (full
	// hex, present in the git mirror); it is asked at every pass.
	Commits func() []string
}

// Options configure a Mirror. Zero values take the documented defaults.
type Options struct {
	// DataDir is the daemon's data directory; objects live in DataDir/lfs.
	DataDir string
	Repos   []Repo
	// Deps, when set, returns the dependency repositories whose objects
	// are kept too (each with Commits set); it is asked at every
	// scheduled pass and by PassDeps, and new ones are added.
	Deps   func() []Repo
	Git    Git
	Logger *slog.Logger
	// MayFetch, when set, is asked before fetching from upstream: false
	// keeps LFS off the link outside its windows. Serving never asks.
	MayFetch func() bool
	// Interval is how often the kept history is re-checked (and
	// missing objects fetched again) without a change of refs. The default
	// value is one minute.
	Interval time.Duration
	// FetchTimeout bounds one `git lfs fetch`. The default value is 6h.
	FetchTimeout time.Duration
	// Metrics, when set, receives the store's Prometheus metrics.
	Metrics prometheus.Registerer
	// MaxConcurrentDownloads bounds the objects being served at once;
	// further requests wait up to SlotWait, then get 503 with
	// Retry-After. The default value is 16.
	MaxConcurrentDownloads int
	// SlotWait is how long an object download waits for one of the
	// MaxConcurrentDownloads slots. The default value is 30 s.
	SlotWait time.Duration
	// Fetched, when set, is called with a repository's id (as
	// imageref.RepoID gives it: a configured or a dependency repository)
	// after objects of it arrived on site: at the end of a pass whose fetch
	// committed some, and after ImportObject stored one. It is called from
	// the pass (or the import) and must return at once (the edge's
	// readiness gate re-looks at revisions held back for their objects).
	Fetched func(repoID string)
}

// Mirror keeps and serves the LFS objects of the mirrored repositories.
type Mirror struct {
	o    Options
	log  *slog.Logger
	root string

	reposMu sync.RWMutex // guards repos and byKey: Deps adds to them
	repos   []*repoState
	byKey   map[string]*repoState
	// depsKick wakes Run when dependency repositories were added or
	// their commits changed.
	depsKick chan struct{}
	// downloads bounds the object downloads served at once.
	downloads *slots.Slots

	scanMu sync.Mutex
	scans  map[string]*scanResult // "<id> <commit>" → result

	openOnce sync.Once
	openErr  error
}

type repoState struct {
	id  string
	cfg Repo
	st  store

	passMu sync.Mutex // one pass at a time

	mu        sync.Mutex
	have      map[string]int64  // committed objects: oid → size
	failed    map[string]string // oid → why the last fetch did not bring it
	pending   []Missing         // of the kept history, after the last pass
	malformed int
	lastPass  time.Time
	lastErr   string
	// fetchFailures counts passes in a row whose fetch left objects
	// missing; retryAt is when a scheduled pass may fetch again.
	fetchFailures int
	retryAt       time.Time
}

// New validates o. It does no I/O; Open and Run do.
func New(o Options) (*Mirror, error) {
	if o.DataDir == "" || o.Git == nil {
		return nil, errors.New("lfs: DataDir and Git are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 6 * time.Hour
	}
	if o.MaxConcurrentDownloads <= 0 {
		o.MaxConcurrentDownloads = 16
	}
	if o.SlotWait <= 0 {
		o.SlotWait = 30 * time.Second
	}
	root, err := filepath.Abs(filepath.Join(o.DataDir, "lfs"))
	if err != nil {
		return nil, fmt.Errorf("lfs: %w", err)
	}
	m := &Mirror{o: o, log: o.Logger, root: root, byKey: map[string]*repoState{},
		downloads: slots.New(o.MaxConcurrentDownloads), scans: map[string]*scanResult{}, depsKick: make(chan struct{}, 1)}
	for _, r := range o.Repos {
		rs, err := m.newRepo(r)
		if err != nil {
			return nil, err
		}
		if _, dup := m.byKey[strings.ToLower(rs.id)]; dup {
			return nil, fmt.Errorf("lfs: %s is configured twice", r.URL)
		}
		m.repos = append(m.repos, rs)
		m.byKey[strings.ToLower(rs.id)] = rs
	}
	if o.Metrics != nil {
		if err := o.Metrics.Register(newCollector(m)); err != nil {
			return nil, fmt.Errorf("lfs: metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Mirror) newRepo(r Repo) (*repoState, error) {
	id, err := imageref.RepoID(r.URL)
	if err != nil {
		return nil, fmt.Errorf("lfs: %w", err)
	}
	sum := sha256.Sum256([]byte(strings.ToLower(id)))
	return &repoState{id: id, cfg: r, st: store{dir: filepath.Join(m.root, "repos", hex.EncodeToString(sum[:12]))},
		have: map[string]int64{}, failed: map[string]string{}}, nil
}

// openRepo re-checks a repository's stored objects (Open).
func (m *Mirror) openRepo(r *repoState) error {
	if err := os.MkdirAll(r.st.dir, 0o755); err != nil {
		return fmt.Errorf("lfs: %w", err)
	}
	have, bad, err := r.st.recheck()
	if err != nil {
		return fmt.Errorf("lfs: check objects of %s: %w", r.id, err)
	}
	if bad > 0 {
		m.log.Warn("lfs: removed damaged objects; they will be fetched again", "repo", r.id, "objects", bad)
	}
	r.mu.Lock()
	r.have = have
	r.mu.Unlock()
	return nil
}

// snapshot returns the repositories known now.
func (m *Mirror) snapshot() []*repoState {
	m.reposMu.RLock()
	defer m.reposMu.RUnlock()
	return append([]*repoState(nil), m.repos...)
}

// maxDepRepos bounds the dependency repositories the store keeps objects
// of (the git mirror bounds its own the same way).
const maxDepRepos = 500

// refreshDeps adds the dependency repositories Options.Deps names that
// are not known yet, each opened (its stored objects re-checked) first.
func (m *Mirror) refreshDeps() {
	if m.o.Deps == nil {
		return
	}
	for _, d := range m.o.Deps() {
		if d.Commits == nil {
			continue
		}
		rs, err := m.newRepo(d)
		if err != nil {
			m.log.Warn("lfs: dependency repository refused", "url", d.URL, "err", err)
			continue
		}
		key := strings.ToLower(rs.id)
		m.reposMu.RLock()
		_, known := m.byKey[key]
		n := len(m.repos)
		m.reposMu.RUnlock()
		if known || n >= len(m.o.Repos)+maxDepRepos {
			continue
		}
		if err := m.openRepo(rs); err != nil {
			m.log.Warn("lfs: dependency repository not opened", "repo", rs.id, "err", err)
			continue
		}
		m.reposMu.Lock()
		if _, known := m.byKey[key]; !known {
			m.repos = append(m.repos, rs)
			m.byKey[key] = rs
			m.DepsChanged()
		}
		m.reposMu.Unlock()
	}
}

// DepsChanged tells Run that Options.Deps may name new repositories or
// new commits: it runs a pass for every dependency repository soon. It
// never blocks.
func (m *Mirror) DepsChanged() {
	select {
	case m.depsKick <- struct{}{}:
	default:
	}
}

// PassDeps runs one pass now for every dependency repository Options.Deps
// names (sync --once), and returns their errors.
func (m *Mirror) PassDeps(ctx context.Context) error {
	if err := m.Open(); err != nil {
		return err
	}
	m.refreshDeps()
	var errs []error
	for _, r := range m.snapshot() {
		if r.cfg.Commits == nil {
			continue
		}
		if err := m.pass(ctx, r, true); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.id, err))
		}
	}
	return errors.Join(errs...)
}

// Open re-checks every stored object (sha256 and size; damaged ones are
// removed and fetched again later, never served) and clears what an
// interrupted fetch left. It runs once; Run calls it.
func (m *Mirror) Open() error {
	m.openOnce.Do(func() {
		for _, r := range m.snapshot() {
			if m.openErr = m.openRepo(r); m.openErr != nil {
				return
			}
		}
	})
	return m.openErr
}

// Run opens the store, then runs a pass for every repository at start,
// after each change of a repository's refs (events), when a dependency
// repository is added and every Interval, until ctx is done.
func (m *Mirror) Run(ctx context.Context, events <-chan gitmirror.RefsChanged) error {
	if err := m.Open(); err != nil {
		return err
	}
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	all := func(force bool) {
		m.refreshDeps()
		for _, r := range m.snapshot() {
			m.pass(ctx, r, force)
		}
	}
	all(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if r := m.repoOf(ev.Repo); r != nil {
				m.pass(ctx, r, true)
			}
		case <-t.C:
			all(false)
		case <-m.depsKick:
			// New dependency repositories or new needed commits: a pass
			// for each now, fetching even during a backoff.
			m.refreshDeps()
			for _, r := range m.snapshot() {
				if r.cfg.Commits != nil {
					m.pass(ctx, r, true)
				}
			}

		}
	}
}

func (m *Mirror) repoOf(idOrURL string) *repoState {
	id := idOrURL
	if strings.Contains(id, "://") {
		var err error
		if id, err = imageref.RepoID(id); err != nil {
			return nil
		}
	}
	m.reposMu.RLock()
	defer m.reposMu.RUnlock()
	return m.byKey[strings.ToLower(strings.TrimSuffix(id, ".git"))]
}

// Pass runs one pass for a repository now and returns its error (tests,
// `sync --once`-style callers).
func (m *Mirror) Pass(ctx context.Context, idOrURL string) error {
	if err := m.Open(); err != nil {
		return err
	}
	r := m.repoOf(idOrURL)
	if r == nil {
		return fmt.Errorf("lfs: %w: %q", gitmirror.ErrUnknownRepo, idOrURL)
	}
	return m.pass(ctx, r, true)
}

// Missing is an LFS object a revision needs that is not on site.
type Missing struct {
	Entry
	Commit string `json:"commit,omitempty"` // when known: the revision checked
	// Reason is why the last fetch did not bring it, if one was tried.
	Reason string `json:"reason,omitempty"`
}

// pass brings the repository's store in line with its history: scan every
// revision the refs reach, fetch what is missing (when the link policy
// allows), prune what no revision points at any more. After a fetch that
// left objects missing (an object the upstream does not have), scheduled
// passes (not forced) wait before fetching again: Interval doubling up to
// maxRetryWait. A change of refs forces a pass.
func (m *Mirror) pass(ctx context.Context, r *repoState, force bool) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	err := m.passLocked(ctx, r, force)
	r.mu.Lock()
	r.lastPass = time.Now()
	prev := r.lastErr
	r.lastErr = ""
	if err != nil {
		r.lastErr = err.Error()
	}
	r.mu.Unlock()
	if err != nil && ctx.Err() == nil && prev != err.Error() {
		m.log.Warn("lfs: pass incomplete", "repo", r.id, "err", err)
	}
	return err
}

// maxRetryWait bounds the wait between fetches that leave objects missing.
const maxRetryWait = time.Hour

func (m *Mirror) passLocked(ctx context.Context, r *repoState, force bool) error {
	var sr *scanResult
	var err error
	if r.cfg.Commits != nil {
		sr, err = m.scanCommits(ctx, r, r.cfg.Commits())
	} else {
		sr, err = m.scanHistory(ctx, r, false)
	}
	if errors.Is(err, gitmirror.ErrNotReady) {
		return nil // nothing mirrored yet: nothing to want
	}
	if err != nil {
		return err // never prune on a partial picture
	}
	need := map[string]bool{}
	var missing []Missing
	for _, e := range sr.entries {
		need[e.OID] = true
		if !r.st.has(e.Pointer) {
			missing = append(missing, Missing{Entry: e})
		}
	}
	var fetchErr error
	r.mu.Lock()
	due := force || !time.Now().Before(r.retryAt)
	r.mu.Unlock()
	arrived := 0
	if len(missing) > 0 && due && (m.o.MayFetch == nil || m.o.MayFetch()) {
		fetchErr = m.fetch(ctx, r, missing)
		still := missing[:0]
		for _, mi := range missing {
			if !r.st.has(mi.Pointer) {
				still = append(still, mi)
			}
		}
		arrived = len(missing) - len(still)
		missing = still
		r.mu.Lock()
		if len(missing) == 0 {
			r.fetchFailures, r.retryAt = 0, time.Time{}
		} else {
			r.fetchFailures++
			wait := m.o.Interval
			for i := 1; i < r.fetchFailures && wait < maxRetryWait; i++ {
				wait *= 2
			}
			r.retryAt = time.Now().Add(min(wait, maxRetryWait))
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	pruned, perr := r.st.prune(r.have, need)
	for oid := range r.failed {
		if !need[oid] {
			delete(r.failed, oid)
		}
	}
	for i := range missing {
		missing[i].Reason = r.failed[missing[i].OID]
	}
	r.pending = missing
	r.malformed = len(sr.malformed)
	r.mu.Unlock()
	if arrived > 0 {
		m.fetched(r.id)
	}
	if pruned > 0 {
		m.log.Info("lfs: pruned objects no ref reaches any more", "repo", r.id, "objects", pruned)
	}
	if perr != nil {
		return fmt.Errorf("prune: %w", perr)
	}
	if fetchErr != nil {
		return fetchErr
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d LFS objects not on site yet, first: %s", len(missing), describeMissing(missing[0]))
	}
	return nil
}

func describeMissing(mi Missing) string {
	s := fmt.Sprintf("%s (%s, %d bytes)", mi.OID, mi.Path, mi.Size)
	if mi.Commit != "" {
		s = fmt.Sprintf("%s (%s at %s, %d bytes)", mi.OID, mi.Path, short12(mi.Commit), mi.Size)
	}
	if mi.Reason != "" {
		s += ": " + mi.Reason
	}
	return s
}

func short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// fetch runs `git lfs fetch --all origin` in the mirror's repository with
// the repository's staging area as git-lfs's storage, then verifies and
// commits every missing object that arrived. Objects already on site are
// hard-linked into the staging area first, so git-lfs sees them and never
// fetches them again.
func (m *Mirror) fetch(ctx context.Context, r *repoState, missing []Missing) error {
	ctx, cancel := context.WithTimeout(ctx, m.o.FetchTimeout)
	defer cancel()
	staging := r.st.staging()
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("lfs: clear staging: %w", err)
	}
	defer os.RemoveAll(staging)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fmt.Errorf("lfs: %w", err)
	}
	r.mu.Lock()
	have := make([]string, 0, len(r.have))
	for oid := range r.have {
		have = append(have, oid)
	}
	r.mu.Unlock()
	for _, oid := range have {
		dst := filepath.Join(staging, "objects", oid[0:2], oid[2:4], oid)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("lfs: %w", err)
		}
		if err := os.Link(r.st.path(oid), dst); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lfs: %w", err)
		}
	}
	rev, commits := "HEAD", []string(nil)
	if r.cfg.Commits != nil {
		// A dependency's HEAD names nothing: its needed commits do.
		// The first of them with a .lfsconfig names the endpoint.
		commits = r.cfg.Commits()
		for _, c := range commits {
			if _, err := m.o.Git.RunGit(ctx, r.id, false, nil, "cat-file", "-e", c+":.lfsconfig"); err == nil {
				rev = c
				break
			}
		}
	} else if tip := m.upstreamHead(ctx, r); tip != "" {
		rev = tip
	}
	ep, err := m.endpoint(ctx, r, rev)
	if err != nil {
		return err
	}
	args := []string{
		"-c", "lfs.url=" + ep,
		"-c", "lfs.storage=" + staging,
		// Retries belong to the next pass (backoff of the link policy),
		// not to a tight loop inside git-lfs.
		"-c", "lfs.transfer.maxretries=2",
		"-c", "lfs.concurrenttransfers=8",
		"lfs", "fetch"}
	var ferr error
	if r.cfg.Commits == nil {
		_, ferr = m.o.Git.RunGit(ctx, r.id, true, nil, append(args, "--all", "origin")...)
	} else {
		// Only the needed commits' objects, a bounded number of commits
		// per run.
		for i := 0; i < len(commits) && ferr == nil; i += fetchChunk {
			_, ferr = m.o.Git.RunGit(ctx, r.id, true, nil, append(append(args, "origin"), commits[i:min(i+fetchChunk, len(commits))]...)...)
		}
	}
	why := ""
	if ferr != nil {
		why = lfsErrorText(ferr.Error())
	}
	// Hashing and fsync dominate once the bytes are here: commit objects
	// side by side (bounded), each still fsynced before its rename.
	var committed, failed atomic.Int64
	var g errgroup.Group
	g.SetLimit(commitWorkers)
	for _, mi := range missing {
		g.Go(func() error {
			err := r.st.commitStaged(mi.Pointer)
			r.mu.Lock()
			defer r.mu.Unlock()
			switch {
			case err == nil:
				committed.Add(1)
				r.have[mi.OID] = mi.Size
				delete(r.failed, mi.OID)
			case errors.Is(err, fs.ErrNotExist):
				failed.Add(1)
				reason := "not fetched"
				if why != "" {
					reason += ": " + why
				}
				r.failed[mi.OID] = reason
			default:
				failed.Add(1)
				r.failed[mi.OID] = err.Error()
			}
			return nil
		})
	}
	_ = g.Wait()
	if n := committed.Load(); n > 0 {
		m.log.Info("lfs: objects fetched and verified", "repo", r.id, "objects", n)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, mi := range missing {
			if why, ok := r.failed[mi.OID]; ok {
				mi.Reason = why
				return fmt.Errorf("lfs fetch: %d of %d objects not fetched; first: %s", n, len(missing), describeMissing(mi))
			}
		}
	}
	return nil
}

// upstreamHead returns the upstream tip of the branch HEAD names, or ""
// when the mirror holds none. In a gated repository HEAD's branch is what
// the gate advertises, which lags the upstream (and names nothing before
// the first advertisement): the endpoint of the objects the gate waits for
// is the upstream's.
func (m *Mirror) upstreamHead(ctx context.Context, r *repoState) string {
	out, err := m.o.Git.RunGit(ctx, r.id, false, nil, "symbolic-ref", "-q", "HEAD")
	if err != nil {
		return ""
	}
	target := strings.TrimSpace(string(out))
	tips, err := m.o.Git.RefTips(ctx, r.id)
	if err != nil {
		return ""
	}
	for _, t := range tips {
		if t.Name == target {
			return t.Object
		}
	}
	return ""
}

// fetchChunk bounds the commits named on one `git lfs fetch` command line.
const fetchChunk = 200

// endpoint returns the upstream's LFS endpoint as git-lfs finds it for a
// clone of the upstream: lfs.url (or remote.origin.lfsurl) in the .lfsconfig
// of rev (the upstream tip of HEAD's branch, or the first needed commit of
// a dependency that has one), else
// <url>.git/info/lfs. Only http and https endpoints without
// credentials are used: a .lfsconfig cannot send the mirror to file:// or
// any other transport. It is passed to git-lfs explicitly, so nothing else
// in the repository can change it.
func (m *Mirror) endpoint(ctx context.Context, r *repoState, rev string) (string, error) {
	for _, key := range []string{"lfs.url", "remote.origin.lfsurl"} {
		out, err := m.o.Git.RunGit(ctx, r.id, false, nil, "config", "--blob", rev+":.lfsconfig", "--get", key)
		v := strings.TrimSpace(string(out))
		if err != nil || v == "" {
			continue // no .lfsconfig, or no such key
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return "", fmt.Errorf("LFS endpoint %q in .lfsconfig: want an http(s) URL without credentials", short(v))
		}
		return v, nil
	}
	u := strings.TrimSuffix(r.cfg.URL, "/")
	if !strings.HasSuffix(u, ".git") {
		u += ".git"
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "", fmt.Errorf("LFS endpoint of %s: only http(s) upstreams (or an http(s) lfs.url in .lfsconfig) are fetched", short(r.cfg.URL))
	}
	return u + "/info/lfs", nil
}

// commitWorkers bounds the objects hashed and fsynced at once.
const commitWorkers = 4

// lfsErrorText keeps git-lfs's message short: its last lines say what failed.
func lfsErrorText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// RevisionReport says whether every LFS object a revision points at is on
// site.
type RevisionReport struct {
	Repo     string `json:"repo"`
	Commit   string `json:"commit"`
	Objects  int    `json:"objects"` // pointer files (distinct objects)
	Bytes    int64  `json:"bytes"`
	Complete bool   `json:"complete"`
	// Missing lists the objects not on site (path: one file pointing at it).
	Missing   []Missing   `json:"missing"`
	Malformed []Malformed `json:"malformed"`
	// HistoryMissing lists objects of other revisions the mirror serves
	// (the history of the refs clients see: not a gated branch's hidden
	// upstream tip) that are not on site (after the last pass). Argo CD's
	// `git lfs fetch --all` fails on any of them, so they make the revision
	// not complete.
	HistoryMissing []Missing `json:"historyMissing"`
}

// Revision checks commit (full hex) of a repository: every pointer file of
// its tree, and whether its object is on site. A revision with a malformed
// pointer is not complete either. It reads only local data.
func (m *Mirror) Revision(ctx context.Context, idOrURL, commit string) (*RevisionReport, error) {
	r := m.repoOf(idOrURL)
	if r == nil {
		return nil, fmt.Errorf("lfs: %w: %q", gitmirror.ErrUnknownRepo, idOrURL)
	}
	sr, err := m.scanCommit(ctx, r.id, commit)
	if err != nil {
		return nil, err
	}
	// Other revisions' objects count only where a client's `git lfs fetch
	// --all` would walk them: the history of the refs the mirror serves,
	// not the hidden upstream tips a gate holds back.
	r.mu.Lock()
	pending := append([]Missing(nil), r.pending...) // ImportObject edits it in place
	r.mu.Unlock()
	served := map[string]bool{}
	if len(pending) > 0 {
		hr, err := m.scanHistory(ctx, r, true)
		if err != nil {
			return nil, err
		}
		for _, e := range hr.entries {
			served[e.OID] = true
		}
	}
	rep := &RevisionReport{Repo: r.id, Commit: commit, Missing: []Missing{}, Malformed: append([]Malformed{}, sr.malformed...)}
	seen := map[string]bool{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range sr.entries {
		if seen[e.OID] {
			continue
		}
		seen[e.OID] = true
		rep.Objects++
		rep.Bytes += e.Size
		if !r.st.has(e.Pointer) {
			rep.Missing = append(rep.Missing, Missing{Entry: e, Commit: commit, Reason: r.failed[e.OID]})
		}
	}
	rep.HistoryMissing = []Missing{}
	for _, mi := range pending {
		if !seen[mi.OID] && served[mi.OID] {
			rep.HistoryMissing = append(rep.HistoryMissing, mi)
		}
	}
	rep.Complete = len(rep.Missing) == 0 && len(rep.Malformed) == 0 && len(rep.HistoryMissing) == 0
	return rep, nil
}

// RepoStatus is the LFS state of one repository.
type RepoStatus struct {
	ID      string `json:"id"`
	Objects int    `json:"objects"` // on site, verified
	Bytes   int64  `json:"bytes"`
	// Pending lists the objects of the kept history not on site yet
	// (after the last pass).
	Pending   []Missing  `json:"pending"`
	Malformed int        `json:"malformed"` // malformed pointer files in the kept history
	LastPass  *time.Time `json:"lastPass,omitempty"`
	LastError string     `json:"lastError,omitempty"`
}

// Status returns every repository's LFS state, in configuration order.
func (m *Mirror) Status() []RepoStatus {
	repos := m.snapshot()
	out := make([]RepoStatus, 0, len(repos))
	for _, r := range repos {
		r.mu.Lock()
		s := RepoStatus{ID: r.id, Objects: len(r.have), Pending: append([]Missing{}, r.pending...),
			Malformed: r.malformed, LastError: r.lastErr}
		for _, n := range r.have {
			s.Bytes += n
		}
		if !r.lastPass.IsZero() {
			t := r.lastPass.UTC()
			s.LastPass = &t
		}
		r.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// ErrObjectMismatch is returned by ImportObject for bytes that are not the
// object they claim to be.
var ErrObjectMismatch = errMismatch

// Has reports whether the object oid of size bytes is on site, verified,
// for repository idOrURL (configured URL or id).
func (m *Mirror) Has(idOrURL, oid string, size int64) (bool, error) {
	r, err := m.objectRepo(idOrURL, oid, size)
	if err != nil {
		return false, err
	}
	return r.st.has(Pointer{OID: oid, Size: size}), nil
}

// objectRepo opens the store and returns repository idOrURL's state for
// object oid of size bytes: an unknown repository or a bad oid or size is
// an error.
func (m *Mirror) objectRepo(idOrURL, oid string, size int64) (*repoState, error) {
	if err := m.Open(); err != nil {
		return nil, err
	}
	r := m.repoOf(idOrURL)
	if r == nil {
		return nil, fmt.Errorf("lfs: %w: %q", gitmirror.ErrUnknownRepo, idOrURL)
	}
	if !IsOID(oid) || size < 0 {
		return nil, fmt.Errorf("lfs: bad object %q (%d bytes)", short(oid), size)
	}
	return r, nil
}

// ImportObject stores LFS object oid (size bytes, read from rd) for
// repository idOrURL, as a fetch would: hashed while written to a temp
// file, checked, fsynced, renamed into place (store.put). It returns false
// when the object was on site already (rd is not read: objects are never
// re-copied). Bytes that do not match are an ErrObjectMismatch error and
// nothing is stored. The next pass counts the object as present; it is
// dropped from the repository's pending list now.
func (m *Mirror) ImportObject(ctx context.Context, idOrURL, oid string, size int64, rd io.Reader) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r, err := m.objectRepo(idOrURL, oid, size)
	if err != nil {
		return false, err
	}
	p := Pointer{OID: oid, Size: size}
	added, err := r.st.put(p, rd)
	if err != nil {
		return false, fmt.Errorf("lfs: import: %w", err)
	}
	r.mu.Lock()
	r.have[oid] = size
	delete(r.failed, oid)
	kept := r.pending[:0]
	for _, mi := range r.pending {
		if mi.OID != oid {
			kept = append(kept, mi)
		}
	}
	r.pending = kept
	r.mu.Unlock()
	if added {
		m.fetched(r.id)
	}
	return added, nil
}

// fetched tells Options.Fetched that objects of repository id arrived.
func (m *Mirror) fetched(id string) {
	if m.o.Fetched != nil {
		m.o.Fetched(id)
	}
}
