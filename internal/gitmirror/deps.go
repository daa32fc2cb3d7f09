package gitmirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/gitdeps"
)

// Dependency repositories: the other repositories the mirrored revisions
// need (docs/mirror.md, "Submodules and remote bases"). The mirror finds
// the submodules itself: for every tracked tip of a configured repository
// it reads .gitmodules and the gitlinks, recursively through the
// submodules' own commits. Remote Kustomize bases (and the submodules a
// bundle recorded) come from the bundle index, through NeedGitDeps.
//
// Each dependency is one more bare repository, at <dataDir>/git/<id>.git
// like a configured one and served at the same kind of URL, holding only
// the commits needed: each kept under refs/ballast/keep/<sha> (hidden,
// fetchable by SHA, safe from gc), and a remote base's ref (a tag or
// branch) advertised at its recorded commit. Needs only grow (a rollback
// needs the old ones) and are written to <dataDir>/git/.gitdeps.json
// (temp file, fsync, rename) before anything is fetched; at start every
// need is checked against the repository, and what is missing is fetched
// again, never trusted.
//
// Discovery reads only the tips of the refs a repository tracks
// (Upstream.Track) when it names any: an untracked branch's .gitmodules
// makes the mirror fetch nothing.

// Dep is one commit of another repository that a revision needs.
type Dep struct {
	// URL is the upstream URL in any form gitdeps.Normalize accepts; a
	// relative submodule URL must be resolved first.
	URL string
	// Commit is the full 40-hex commit SHA.
	Commit string
	// Ref, when set, is advertised at Commit: the ref a remote base names
	// ("v1.2", "main", or a full "refs/…" name). A ref equal to Commit is
	// no ref.
	Ref string
}

// DepStatus is one dependency repository, for the API and tests.
type DepStatus struct {
	ID        string            `json:"id"`
	URL       string            `json:"url"`
	Commits   []string          `json:"commits"`
	Refs      map[string]string `json:"refs,omitempty"`
	Missing   []string          `json:"missing,omitempty"`
	LastError string            `json:"lastError,omitempty"`
}

// depNeeds is the persisted need of one dependency repository.
type depNeeds struct {
	ID      string            `json:"id"`
	URL     string            `json:"url"`
	Commits []string          `json:"commits"`
	Refs    map[string]string `json:"refs,omitempty"` // ref as named → commit
}

type depFile struct {
	Version int         `json:"version"`
	Repos   []*depNeeds `json:"repos"`
}

// Bounds on what discovery may add.
const (
	maxDepRepos   = 500
	maxDepCommits = 10000
	maxDepRounds  = 8      // submodules nested deeper are not followed
	maxScanned    = 100000 // revisions whose .gitmodules outcome is remembered
	depRetryMin   = 10 * time.Second
	depRetryMax   = 5 * time.Minute
)

type deps struct {
	m    *Mirror
	path string

	mu      sync.Mutex
	needs   map[string]*depNeeds // lowercased id → needs
	repos   map[string]*repo     // lowercased id → repository
	missing map[string][]string  // lowercased id → commits not yet fetched
	errs    map[string]string    // lowercased id → last error
	scanned map[string]error     // "<dir>@<sha>" whose .gitmodules were read → what was wrong
	kick    chan struct{}
	passMu  sync.Mutex // one pass at a time

	saveMu sync.Mutex
	saved  []byte // what the file holds (last saved), so an unchanged save writes nothing
}

func newDeps(m *Mirror) *deps {
	return &deps{
		m: m, path: filepath.Join(m.root, ".gitdeps.json"),
		needs: map[string]*depNeeds{}, repos: map[string]*repo{}, missing: map[string][]string{},
		errs: map[string]string{}, scanned: map[string]error{}, kick: make(chan struct{}, 1),
	}
}

// lookup returns the dependency repository of a lowercased id, if any.
func (d *deps) lookup(key string) *repo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.repos[key]
}

// open loads the persisted needs and recovers their repositories (as Open
// does for configured ones). Called by Mirror.Open.
func (d *deps) open(ctx context.Context) error {
	raw, err := os.ReadFile(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	var f depFile
	if err := json.Unmarshal(raw, &f); err != nil {
		// Written atomically, so damage is not ours to repair: start
		// over; discovery and the bundles add the needs again.
		d.m.log.Error("git mirror: dependency state unreadable; rediscovering", "file", d.path, "err", err)
		return nil
	}
	for _, n := range f.Repos {
		if _, err := d.add(n.URL, "", ""); err != nil {
			d.m.log.Warn("git mirror: dropping a recorded dependency", "url", n.URL, "err", err)
			continue
		}
		d.mu.Lock()
		have := d.needs[strings.ToLower(n.ID)]
		d.mu.Unlock()
		if have == nil {
			continue
		}
		for _, c := range n.Commits {
			if isHex(c) {
				d.addNeed(have, c, "")
			}
		}
		for ref, c := range n.Refs {
			if isHex(c) && validDepRef(ref) {
				d.addNeed(have, c, ref)
			}
		}
	}
	d.mu.Lock()
	repos := make([]*repo, 0, len(d.repos))
	for _, r := range d.repos {
		repos = append(repos, r)
	}
	d.mu.Unlock()
	for _, r := range repos {
		if err := r.recover(ctx); err != nil && ctx.Err() == nil {
			d.m.log.Error("git mirror: dependency repository check failed; it will be re-made", "repo", r.id, "err", err)
			continue
		}
		// The refs the file records are written before anything is
		// served: a kill after the file was saved and before the git
		// refs moved (PointGitDepRefs) must not leave an activation
		// right after the restart advertising the old commits until the
		// first dependency pass.
		d.mu.Lock()
		n := d.needs[strings.ToLower(r.id)]
		named := n != nil && len(n.Refs) > 0
		d.mu.Unlock()
		if !named {
			continue
		}
		if err := d.applyRefs(ctx, r); err != nil && ctx.Err() == nil {
			d.m.log.Warn("git mirror: recorded dependency refs not written; the next pass writes them", "repo", r.id, "err", err)
		}
	}
	return ctx.Err()
}

// add registers the dependency repository of url (creating its repo
// value, not its directory) and, with commit set, one need. It returns
// the repository's id. A URL whose id is a configured repository's adds
// nothing: that repository is mirrored whole.
func (d *deps) add(url, commit, ref string) (string, error) {
	n, err := gitdeps.Normalize(url)
	if err != nil {
		return "", err
	}
	id, err := gitdeps.ID(n)
	if err != nil {
		return "", err
	}
	if err := validateRepoID(id); err != nil {
		return "", fmt.Errorf("%s: %w", n, err)
	}
	key := strings.ToLower(id)
	if _, ok := d.m.byKey[key]; ok {
		return id, nil
	}
	d.mu.Lock()
	need := d.needs[key]
	if need == nil {
		if len(d.needs) >= maxDepRepos {
			d.mu.Unlock()
			return "", fmt.Errorf("more than %d dependency repositories", maxDepRepos)
		}
		up := Upstream{URL: d.fetchURL(n, id), PollInterval: time.Hour}
		if err := validateUpstreamURL(up.URL); err != nil {
			d.mu.Unlock()
			return "", err
		}
		up.UsernameFile, up.PasswordFile = d.credentialsFor(id)
		sum := sha256.Sum256([]byte(key))
		r := &repo{
			m: d.m, id: id, up: up, key: hex.EncodeToString(sum[:12]),
			dir:      filepath.Join(d.m.root, filepath.FromSlash(id)+".git"),
			lockPath: filepath.Join(d.m.root, ".locks", hex.EncodeToString(sum[:12])+".lock"),
			ready:    make(chan struct{}), kick: d.kick,
		}
		if !strings.HasPrefix(r.dir, d.m.root+string(filepath.Separator)) {
			d.mu.Unlock()
			return "", fmt.Errorf("%s: repository path escapes the data directory", n)
		}
		need = &depNeeds{ID: id, URL: up.URL}
		d.needs[key] = need
		d.repos[key] = r
	}
	d.mu.Unlock()
	if commit != "" {
		d.addNeed(need, commit, ref)
	}
	return id, nil
}

// fetchURL is where the mirror fetches a dependency from: its URL, except
// that an ssh or scp-like URL on a host that a configured repository
// reaches over http(s) is fetched over that scheme (a site has that
// repository's credentials, not ssh keys for every submodule's author).
func (d *deps) fetchURL(n, id string) string {
	if !strings.HasPrefix(n, "ssh://") {
		return n
	}
	host, path, _ := strings.Cut(id, "/")
	for _, r := range d.m.repos {
		rh, _, _ := strings.Cut(r.id, "/")
		if strings.EqualFold(rh, host) && !strings.HasPrefix(r.up.URL, "ssh://") {
			scheme, _, _ := strings.Cut(r.up.URL, "://")
			return scheme + "://" + rh + "/" + path + ".git"
		}
	}
	return n
}

// credentialsFor returns the credential files of a configured repository
// on the same host and scheme, if any.
func (d *deps) credentialsFor(id string) (string, string) {
	host, _, _ := strings.Cut(strings.ToLower(id), "/")
	for _, r := range d.m.repos {
		rh, _, _ := strings.Cut(strings.ToLower(r.id), "/")
		if rh == host && r.up.UsernameFile != "" {
			return r.up.UsernameFile, r.up.PasswordFile
		}
	}
	return "", ""
}

func validDepRef(ref string) bool {
	return ref != "" && !strings.HasPrefix(ref, "-") && !strings.ContainsAny(ref, " \t\r\n\x00:\\~^?*[") &&
		!strings.Contains(ref, "..") && !strings.HasPrefix(ref, "refs/ballast")
}

func (d *deps) addNeed(n *depNeeds, commit, ref string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	total := 0
	for _, x := range d.needs {
		total += len(x.Commits)
	}
	i := sort.SearchStrings(n.Commits, commit)
	if i == len(n.Commits) || n.Commits[i] != commit {
		if total >= maxDepCommits {
			return
		}
		n.Commits = append(n.Commits, "")
		copy(n.Commits[i+1:], n.Commits[i:])
		n.Commits[i] = commit
	}
	// A ref already advertised keeps its commit: which revision's commit
	// a moving ref (a branch, a tag moved upstream) points at is the
	// owner's choice (PointGitDepRefs), never the last need recorded.
	if ref != "" && ref != commit && validDepRef(ref) {
		if n.Refs == nil {
			n.Refs = map[string]string{}
		}
		if _, set := n.Refs[ref]; !set {
			n.Refs[ref] = commit
		}
	}
}

// save writes the needs (temp file, fsync, rename, fsync dir).
func (d *deps) save() error {
	d.mu.Lock()
	f := depFile{Version: 1}
	for _, n := range d.needs {
		c := *n
		c.Commits = append([]string(nil), n.Commits...)
		if n.Refs != nil {
			c.Refs = map[string]string{}
			for k, v := range n.Refs {
				c.Refs[k] = v
			}
		}
		f.Repos = append(f.Repos, &c)
	}
	d.mu.Unlock()
	sort.Slice(f.Repos, func(i, j int) bool { return f.Repos[i].ID < f.Repos[j].ID })
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if bytes.Equal(raw, d.saved) {
		return nil // unchanged: no write (every pass saves; most change nothing)
	}
	if err := atomicfile.WriteFile(d.path, raw, 0o644); err != nil {
		return err
	}
	d.saved = raw
	return nil
}

// NeedGitDeps records commits of other repositories that revision rev of
// repository repoURL needs (the submodules and remote bases its bundle
// records) and asks for them to be fetched. It returns once the needs are
// on disk; fetching happens in Run's loop. Bad URLs or SHAs are errors
// and nothing of the call is recorded.
//
// A ref that is already advertised is left where it is: PointGitDepRefs
// moves it.
func (m *Mirror) NeedGitDeps(ctx context.Context, repoURL, rev string, ds []Dep) error {
	if err := checkDeps(repoURL, rev, ds); err != nil {
		return err
	}
	for _, dp := range ds {
		if _, err := m.deps.add(dp.URL, dp.Commit, dp.Ref); err != nil {
			return fmt.Errorf("gitmirror: %w", err)
		}
	}
	if err := m.deps.save(); err != nil {
		return fmt.Errorf("gitmirror: save dependencies: %w", err)
	}
	m.deps.wake()
	return ctx.Err()
}

func checkDeps(repoURL, rev string, ds []Dep) error {
	for _, dp := range ds {
		if _, err := gitdeps.Normalize(dp.URL); err != nil {
			return fmt.Errorf("gitmirror: %s@%s: %w", repoURL, trim(rev), err)
		}
		if !isHex(dp.Commit) {
			return fmt.Errorf("gitmirror: %s@%s: dependency %s: commit %q is not a full SHA", repoURL, trim(rev), dp.URL, trim(dp.Commit))
		}
		if dp.Ref != "" && dp.Ref != dp.Commit && !validDepRef(dp.Ref) {
			return fmt.Errorf("gitmirror: %s@%s: dependency %s: bad ref %q", repoURL, trim(rev), dp.URL, trim(dp.Ref))
		}
	}
	return nil
}

func (d *deps) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// GitDeps reports every dependency repository: what is needed, what is
// missing, the last error.
func (m *Mirror) GitDeps() []DepStatus {
	d := m.deps
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []DepStatus
	for key, n := range d.needs {
		s := DepStatus{ID: n.ID, URL: n.URL, Commits: append([]string(nil), n.Commits...),
			Missing: append([]string(nil), d.missing[key]...), LastError: d.errs[key]}
		if len(n.Refs) > 0 {
			s.Refs = map[string]string{}
			for k, v := range n.Refs {
				s.Refs[k] = v
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// loop discovers and fetches dependencies until ctx is done: at start,
// whenever a configured repository's refs change or NeedGitDeps adds
// needs, and, while something is missing, with backoff.
func (d *deps) loop(ctx context.Context) {
	events := d.m.Subscribe(ctx)
	failures := 0
	for {
		err := d.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		var retry <-chan time.Time
		if err != nil {
			failures++
			wait := depRetryMin << min(failures-1, 5)
			retry = time.After(jitter(min(wait, depRetryMax), 0.5, 1.0))
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-d.kick:
		case <-retry:
		}
	}
}

// SyncGitDeps runs one discovery and fetch pass now (sync --once, tests).
func (m *Mirror) SyncGitDeps(ctx context.Context) error { return m.deps.pass(ctx) }

// pass discovers the submodules of every branch tip of the configured
// repositories, fetches what is missing, then the submodules of the
// fetched commits, up to maxDepRounds levels.
func (d *deps) pass(ctx context.Context) error {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	var errs []error
	for _, r := range d.m.repos {
		if !r.isReady() {
			continue
		}
		if err := d.discoverRepo(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	mayFetch := d.m.opts.MayPoll == nil || d.m.opts.MayPoll()
	for round := 0; round < maxDepRounds; round++ {
		if err := d.save(); err != nil {
			return fmt.Errorf("gitmirror: save dependencies: %w", err)
		}
		d.mu.Lock()
		repos := make([]*repo, 0, len(d.repos))
		for _, r := range d.repos {
			repos = append(repos, r)
		}
		d.mu.Unlock()
		sort.Slice(repos, func(i, j int) bool { return repos[i].id < repos[j].id })
		grew := false
		for _, r := range repos {
			if err := d.fetchNeeds(ctx, r, mayFetch); err != nil {
				errs = append(errs, err)
			}
			before := d.count()
			if err := d.discoverDep(ctx, r); err != nil {
				errs = append(errs, err)
			}
			grew = grew || d.count() != before
		}
		if !grew {
			break
		}
	}
	return errors.Join(errs...)
}

func (d *deps) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, x := range d.needs {
		n += len(x.Commits) + len(x.Refs)
	}
	return n + len(d.needs)
}

// discoverRepo reads the submodules of the tracked refs' tips of a
// configured repository (Upstream.Track), or of every branch tip when
// none is named.
func (d *deps) discoverRepo(ctx context.Context, r *repo) error {
	var tips []string
	for _, ref := range r.up.Track {
		if !strings.HasPrefix(ref, "refs/") {
			continue
		}
		cands := []string{ref}
		if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
			// A gated branch's upstream tip is kept hidden.
			cands = append(cands, refUpstreamHeads+b)
		}
		for _, c := range cands {
			if out, err := gitIn(ctx, r.dir, "rev-parse", "-q", "--verify", c+"^{commit}"); err == nil {
				tips = append(tips, strings.TrimSpace(string(out)))
			}
		}
	}
	for _, ns := range []string{"refs/heads/", refUpstreamHeads} {
		if len(r.up.Track) > 0 {
			break
		}
		refs, err := listRefs(ctx, r.dir, ns)
		if err != nil {
			return fmt.Errorf("%s: %w", r.id, err)
		}
		for _, obj := range refs {
			tips = append(tips, obj)
		}
	}
	sort.Strings(tips)
	var errs []error
	for i, c := range tips {
		if i > 0 && tips[i-1] == c {
			continue
		}
		if err := d.scan(ctx, r.dir, r.up.URL, c); err != nil {
			errs = append(errs, fmt.Errorf("%s@%s: %w", r.id, c[:12], err))
		}
	}
	return errors.Join(errs...)
}

// discoverDep reads the submodules of the needed commits of a dependency
// that are present.
func (d *deps) discoverDep(ctx context.Context, r *repo) error {
	key := strings.ToLower(r.id)
	d.mu.Lock()
	n := d.needs[key]
	commits := append([]string(nil), n.Commits...)
	missing := map[string]bool{}
	for _, c := range d.missing[key] {
		missing[c] = true
	}
	d.mu.Unlock()
	if _, err := os.Stat(r.dir); err != nil {
		return nil
	}
	var errs []error
	for _, c := range commits {
		if missing[c] {
			continue
		}
		if err := d.scan(ctx, r.dir, n.URL, c); err != nil {
			errs = append(errs, fmt.Errorf("%s@%s: %w", r.id, c[:12], err))
		}
	}
	return errors.Join(errs...)
}

// scan adds the submodules of commit (in the repository at dir, whose
// upstream is superURL) as needs. A commit whose .gitmodules is refused
// adds nothing at all (and is logged once): nothing partial is served.
func (d *deps) scan(ctx context.Context, dir, superURL, commit string) error {
	key := dir + "@" + commit
	d.mu.Lock()
	prev, done := d.scanned[key]
	d.mu.Unlock()
	if done {
		return prev
	}
	subs, err := submodulesAt(ctx, dir, superURL, commit)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.mu.Lock()
	if len(d.scanned) >= maxScanned {
		// Bounded memory: forgetting only costs reading .gitmodules again.
		clear(d.scanned)
	}
	d.scanned[key] = err
	d.mu.Unlock()
	if err != nil {
		d.m.log.Warn("git mirror: submodules of a revision refused; none of them is mirrored", "dir", dir, "commit", commit, "err", err)
		return err
	}
	for _, s := range subs {
		if _, err := d.add(s.URL, s.Commit, ""); err != nil {
			return err
		}
	}
	return nil
}

// submodulesAt returns the submodules of commit: every gitlink that
// .gitmodules maps, with its URL resolved against superURL. Git parses
// .gitmodules (as Argo CD's git does); gitdeps validates it.
func submodulesAt(ctx context.Context, dir, superURL, commit string) ([]Dep, error) {
	out, err := gitIn(ctx, dir, "ls-tree", "-r", "-z", "--full-tree", commit)
	if err != nil {
		return nil, err
	}
	links := map[string]string{}
	for _, e := range strings.Split(string(out), "\x00") {
		meta, p, ok := strings.Cut(e, "\t")
		if f := strings.Fields(meta); ok && len(f) == 3 && f[0] == "160000" && isHex(f[2]) {
			links[p] = f[2]
		}
	}
	if len(links) == 0 {
		return nil, nil
	}
	size, err := gitIn(ctx, dir, "cat-file", "-s", commit+":.gitmodules")
	if err != nil {
		return nil, fmt.Errorf("%w: gitlinks but no .gitmodules", gitdeps.ErrBadGitmodules)
	}
	// git's parse of it is read whole into memory: a blob of hundreds of
	// MB costs its pusher a few KB of pack.
	if n, err := strconv.ParseInt(strings.TrimSpace(string(size)), 10, 64); err != nil || n > gitdeps.MaxGitmodulesSize {
		return nil, fmt.Errorf("%w: .gitmodules of %s bytes, at most %d", gitdeps.ErrBadGitmodules, strings.TrimSpace(string(size)), gitdeps.MaxGitmodulesSize)
	}
	z, err := gitIn(ctx, dir, "config", "--blob", commit+":.gitmodules", "-z", "--list")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", gitdeps.ErrBadGitmodules, err)
	}
	subs, err := gitdeps.ParseConfigList(z)
	if err != nil {
		return nil, err
	}
	var out2 []Dep
	for _, s := range subs {
		c, ok := links[strings.TrimSuffix(s.Path, "/")]
		if !ok {
			continue
		}
		u, err := gitdeps.ResolveSubmoduleURL(superURL, s.URL)
		if err != nil {
			return nil, fmt.Errorf("submodule %s: %w", s.Path, err)
		}
		out2 = append(out2, Dep{URL: u, Commit: c})
	}
	return out2, nil
}

// fetchNeeds makes sure the repository of a dependency holds every needed
// commit, kept, and every needed ref. Upstream is asked only for what is
// missing, and only when mayFetch.
func (d *deps) fetchNeeds(ctx context.Context, r *repo, mayFetch bool) error {
	ctx, cancel := context.WithTimeout(ctx, d.m.opts.FetchTimeout)
	defer cancel()
	if err := d.m.ensureDirs(); err != nil {
		return err
	}
	lk, err := lockFile(ctx, r.lockPath)
	if err != nil {
		return err
	}
	defer lk.unlock()
	key := strings.ToLower(r.id)
	d.mu.Lock()
	n := d.needs[key]
	commits := append([]string(nil), n.Commits...)
	refs := map[string]string{}
	for k, v := range n.Refs {
		refs[k] = v
	}
	d.mu.Unlock()
	setErr := func(err error) error {
		d.mu.Lock()
		if err != nil {
			d.errs[key] = err.Error()
		} else {
			delete(d.errs, key)
		}
		d.mu.Unlock()
		return err
	}
	if err := d.ensureRepo(ctx, r); err != nil {
		return setErr(err)
	}
	missing := d.missingCommits(ctx, r, commits)
	if len(missing) > 0 && mayFetch {
		if err := d.fetchCommits(ctx, r, missing); err != nil {
			d.m.log.Warn("git mirror: fetching dependency commits failed", "repo", r.id, "missing", len(missing), "err", err)
		}
		missing = d.missingCommits(ctx, r, commits)
	}
	// Keep every present commit, and advertise the refs, in one
	// transaction: a crash leaves all or none.
	var lines []string
	miss := map[string]bool{}
	for _, c := range missing {
		miss[c] = true
	}
	have, err := listRefs(ctx, r.dir, "refs/")
	if err != nil {
		return setErr(err)
	}
	for _, c := range commits {
		if !miss[c] && have[refKeepPrefix+c] != c {
			lines = append(lines, "update "+refKeepPrefix+c+" "+c)
		}
	}
	for ref, c := range refs {
		full := d.refName(ctx, r, ref)
		if !miss[c] && have[full] != c {
			lines = append(lines, "update "+full+" "+c)
		}
	}
	sort.Strings(lines)
	if err := updateRefs(ctx, r.dir, lines); err != nil {
		return setErr(fmt.Errorf("%s: %w", r.id, err))
	}
	if err := clearNamespace(ctx, r.dir, refIncoming); err != nil {
		return setErr(fmt.Errorf("%s: %w", r.id, err))
	}
	r.markReady()
	d.mu.Lock()
	d.missing[key] = missing
	d.mu.Unlock()
	// Told only now: a reader that looks at once (HasCommit, GitDeps)
	// must see the commits kept, also in a repository fetched for the
	// first time.
	if len(lines) > 0 && d.m.opts.DepsFetched != nil {
		d.m.opts.DepsFetched()
	}
	if len(missing) > 0 {
		if !mayFetch {
			return setErr(fmt.Errorf("%s: %d commits missing; the link policy holds git back", r.id, len(missing)))
		}
		return setErr(fmt.Errorf("%s: commits not found upstream: %s", r.id, strings.Join(shortList(missing), ", ")))
	}
	return setErr(nil)
}

func shortList(cs []string) []string {
	var out []string
	for i, c := range cs {
		if i == 5 {
			out = append(out, fmt.Sprintf("… %d more", len(cs)-5))
			break
		}
		out = append(out, c)
	}
	return out
}

// refName is the full name a remote base's ref is advertised under: as
// given when it is one ("refs/…"); else a tag when the repository has
// such a tag or the upstream did, else a branch.
func (d *deps) refName(ctx context.Context, r *repo, ref string) string {
	if strings.HasPrefix(ref, "refs/") {
		return ref
	}
	if _, err := gitIn(ctx, r.dir, "rev-parse", "-q", "--verify", "refs/tags/"+ref); err == nil {
		return "refs/tags/" + ref
	}
	if _, err := gitIn(ctx, r.dir, "rev-parse", "-q", "--verify", "refs/heads/"+ref); err == nil {
		return "refs/heads/" + ref
	}
	if _, err := gitIn(ctx, r.dir, "rev-parse", "-q", "--verify", refIncoming+"heads/"+ref); err == nil {
		return "refs/heads/" + ref
	}
	return "refs/tags/" + ref
}

func (d *deps) missingCommits(ctx context.Context, r *repo, commits []string) []string {
	missing, err := missingCommitsIn(ctx, r.dir, commits)
	if err != nil {
		// Not known to be here: fetched (again) or reported missing.
		d.m.log.Debug("git mirror: checking dependency commits", "repo", r.id, "err", err)
		return append([]string(nil), commits...)
	}
	return missing
}

// fetchCommits fetches commits by SHA (and their history, which a client
// fetching one commit may want too), falling back to every branch and tag
// for upstreams that refuse fetches by SHA. Fetched packs are fsynced
// (core.fsync); refs are written afterwards by the caller.
func (d *deps) fetchCommits(ctx context.Context, r *repo, commits []string) error {
	env, err := r.remoteEnv()
	if err != nil {
		return err
	}
	args := []string{"--git-dir=" + r.dir, "fetch", "--quiet", "--no-write-fetch-head", "--no-auto-maintenance", "--no-tags", "--", r.up.URL}
	_, err = gitCmd{args: append(args, commits...), env: env, started: d.m.testHookFetchStarted}.run(ctx)
	if err == nil {
		return nil
	}
	if err := clearNamespace(ctx, r.dir, refIncoming); err != nil {
		return err
	}
	_, err2 := gitCmd{args: append(args, "+refs/heads/*:"+refIncoming+"heads/*", "+refs/tags/*:"+refIncoming+"tags/*"), env: env}.run(ctx)
	if err2 != nil {
		return errors.Join(err, err2)
	}
	// The incoming refs are dropped by the next clear; the needed commits
	// are kept by the caller first (gc never runs in between: it runs
	// under this lock).
	return nil
}

// ensureRepo creates the bare repository of a dependency when it does not
// exist: made in a temp dir, renamed into place.
func (d *deps) ensureRepo(ctx context.Context, r *repo) error {
	if _, err := os.Stat(r.dir); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Join(d.m.root, ".tmp"), "clone-"+r.key+"-")
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := (gitCmd{args: []string{"init", "--quiet", "--bare", "--template=", tmp}}).run(ctx); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := r.ensureConfig(ctx, tmp); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(r.dir), 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.Rename(tmp, r.dir); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return syncDir(filepath.Dir(r.dir))
}

// GitDepsHandler serves GET /api/v1/gitdeps: GitDeps as JSON (a list of
// DepStatus), and GET /api/v1/gitdeps/ref?repo=<id>&ref=<ref>: what a
// fetch of a ref by name gets (DepRef). Reads only, anonymous like the
// rest of the mirror's API.
func (m *Mirror) GitDepsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			apiError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		if req.URL.Path == "/api/v1/gitdeps/ref" {
			m.serveDepRef(w, req)
			return
		}
		if req.URL.Path != "/api/v1/gitdeps" {
			apiError(w, http.StatusNotFound, "not found")
			return
		}
		deps := m.GitDeps()
		if deps == nil {
			deps = []DepStatus{}
		}
		writeAPIJSON(w, http.StatusOK, deps)
	})
}

// LoadDepBundle loads commits of a dependency repository (a submodule's or
// a remote base's, upstream url) from a git bundle carried by an export
// file, as if the mirror had fetched them: the bundle's objects are
// fetched from the file into the repository's incoming namespace, the
// commits become needs (persisted) once the bundle proved to hold them,
// and one ref transaction keeps every needed commit present (fetchNeeds
// without the link). The bundle must
// verify against the repository (its prerequisites present) and hold
// every commit of commits, else it is an ErrBundle error and no commit of
// it is kept. A killed load leaves at most unreferenced objects and
// incoming refs, cleared by the next pass; the needs stay, so the commits
// are fetched again or re-imported. A url that is a configured
// repository's is a no-op: that repository is mirrored whole.
func (m *Mirror) LoadDepBundle(ctx context.Context, url, path string, commits []string) error {
	for _, c := range commits {
		if !isHex(c) {
			return fmt.Errorf("gitmirror: dependency %s: commit %q is not a full SHA", url, trim(c))
		}
	}
	d := m.deps
	id, err := d.add(url, "", "")
	if err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	key := strings.ToLower(id)
	r := d.lookup(key)
	if r == nil {
		return nil
	}
	if err := m.ensureDirs(); err != nil {
		return err
	}
	err = func() error {
		lk, err := lockFile(ctx, r.lockPath)
		if err != nil {
			return err
		}
		defer lk.unlock()
		if err := d.ensureRepo(ctx, r); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if err := checkBundle(ctx, r.dir, path); err != nil {
			return err
		}
		if err := clearNamespace(ctx, r.dir, refIncoming); err != nil {
			return err
		}
		args := []string{"--git-dir=" + r.dir, "fetch", "--quiet", "--no-write-fetch-head", "--no-auto-maintenance", "--no-tags",
			path, "+refs/ballast/export/*:" + refIncoming + "export/*"}
		if _, err := (gitCmd{args: args, env: bundleEnv}).run(ctx); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBundle, id, err)
		}
		if miss := d.missingCommits(ctx, r, commits); len(miss) > 0 {
			_ = clearNamespace(ctx, r.dir, refIncoming)
			return fmt.Errorf("%w: %s: the bundle does not hold commit(s) %s", ErrBundle, id, strings.Join(shortList(miss), ", "))
		}
		return nil
	}()
	if err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	// Only a bundle that held them makes the commits needs: a bad file
	// adds nothing. Killed before this point, the objects are unreferenced
	// (gc drops them) and the import is redone.
	d.mu.Lock()
	need := d.needs[key]
	d.mu.Unlock()
	for _, c := range commits {
		d.addNeed(need, c, "")
	}
	if err := d.save(); err != nil {
		return fmt.Errorf("gitmirror: save dependencies: %w", err)
	}
	// Keep the commits (and advertise the needed refs) as a fetch would;
	// commits of other needs still missing stay missing and are named.
	if err := d.fetchNeeds(ctx, r, false); err != nil {
		d.mu.Lock()
		miss := map[string]bool{}
		for _, c := range d.missing[key] {
			miss[c] = true
		}
		d.mu.Unlock()
		for _, c := range commits {
			if miss[c] {
				return fmt.Errorf("gitmirror: %s: commit %s not kept: %w", id, c, err)
			}
		}
	}
	return nil
}
