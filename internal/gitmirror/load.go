package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrBundle marks a git bundle (of an export file) that cannot be loaded:
// unreadable, or its prerequisite commits are not in the repository (an
// incremental export made for another --since).
var ErrBundle = errors.New("git bundle does not apply")

// refImportPrefix is where a load puts a bundle's refs before it decides
// which of them move the repository's refs; nothing is left there after.
const refImportPrefix = "refs/ballast/import/"

// LoadOptions control LoadBundle.
type LoadOptions struct {
	// Force lets the bundle move a branch backwards (or to a commit that
	// does not descend from the current tip) and re-point a tag. The old
	// tip is kept under refs/ballast/keep/, like a tip the upstream
	// rewrote. The default is false: such refs keep their current value
	// and are listed in LoadResult.Refused.
	Force bool
}

// RefMove is one ref a load changed or refused to change. Old is "" for a
// new ref.
type RefMove struct {
	Name string `json:"name"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new"`
}

// LoadResult says what a load did to the repository's refs (by their
// upstream names, refs/heads/… and refs/tags/…).
type LoadResult struct {
	Updated []RefMove `json:"updated,omitempty"`
	// Refused lists branches the bundle would have moved backwards (or
	// sideways) and tags it would have re-pointed, without Force.
	Refused []RefMove `json:"refused,omitempty"`
	// Kept lists old tips kept under refs/ballast/keep/ (with Force).
	Kept []string `json:"kept,omitempty"`
}

// CheckBundle checks that the git bundle at path can be loaded into the
// repository of idOrURL: readable, and every prerequisite commit present.
// It writes nothing. Errors wrap ErrBundle.
func (m *Mirror) CheckBundle(ctx context.Context, idOrURL, path string) error {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return err
	}
	return checkBundle(ctx, r.dir, path)
}

// CheckBundleIn is CheckBundle for a bare repository given by path.
func CheckBundleIn(ctx context.Context, dir, path string) error { return checkBundle(ctx, dir, path) }

func checkBundle(ctx context.Context, dir, path string) error {
	if _, err := (gitCmd{args: []string{"--git-dir=" + dir, "bundle", "verify", "--quiet", path}, env: bundleEnv}).run(ctx); err != nil {
		return fmt.Errorf("%w to %s (an incremental export made for another base revision?): %w", ErrBundle, dir, err)
	}
	return nil
}

// bundleEnv lets git read a bundle file; the mirror's environment allows
// only network transports otherwise.
var bundleEnv = []string{"GIT_ALLOW_PROTOCOL=file"}

// LoadBundle loads the branches and tags of the git bundle at path (as
// `ballast export` writes it) into the repository of idOrURL, creating the
// repository when the site never had a clone. A branch moves only forward
// (to a descendant of its tip) and a tag is only created, unless
// o.Force. A gated repository gets the branches in its hidden upstream
// namespace and publishes its ungated branches, as after a fetch.
// Subscribers see a RefsChanged event when a ref moved. It holds the
// repository's lock (shared with the fetch loop), so it is safe beside a
// running mirror in the same process; call it after Open.
func (m *Mirror) LoadBundle(ctx context.Context, idOrURL, path string, o LoadOptions) (*LoadResult, error) {
	if _, err := m.EnsureRepo(ctx, idOrURL); err != nil {
		return nil, err
	}
	r, err := m.lookup(idOrURL)
	if err != nil {
		return nil, err
	}
	lk, err := lockFile(ctx, r.lockPath)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	res, err := loadBundle(ctx, r.dir, path, r.isGated(), o, m.log.Info)
	if err != nil {
		return nil, err
	}
	if len(res.Updated) == 0 {
		return res, nil
	}
	if err := r.publishBranches(ctx, r.dir); err != nil {
		return res, err
	}
	refs, err := r.upstreamRefs(ctx, r.dir)
	if err != nil {
		return res, err
	}
	head := readHead(ctx, r.dir)
	r.mu.Lock()
	r.refs, r.head = refs, head
	r.mu.Unlock()
	r.markReady()
	m.log.Info("git mirror: refs loaded from a bundle", "repo", r.id, "updated", len(res.Updated), "refused", len(res.Refused))
	m.publish(RefsChanged{Repo: r.id, URL: r.up.URL, Head: head, Refs: refs, At: time.Now()})
	return res, nil
}

// LoadBundleInto is LoadBundle for a bare repository of the mirror given by
// path only (`ballast import --git-dir`, beside a running daemon): the same
// rules, the gated namespace read from the repository's config. Served
// branches of a gated repository are left to the daemon.
func LoadBundleInto(ctx context.Context, dir, path string, o LoadOptions) (*LoadResult, error) {
	out, err := gitIn(ctx, dir, "config", "--get", gatedConfigKey)
	gated := err == nil && strings.TrimSpace(string(out)) == "true"
	return loadBundle(ctx, dir, path, gated, o, func(string, ...any) {})
}

// loadBundle fetches the bundle's refs into refImportPrefix, then moves
// the repository's refs by the rules of LoadBundle in one transaction
// that also drops the import refs.
func loadBundle(ctx context.Context, dir, path string, gated bool, o LoadOptions, info func(string, ...any)) (*LoadResult, error) {
	if err := checkBundle(ctx, dir, path); err != nil {
		return nil, err
	}
	// Leftovers of a load killed mid-way are dropped first.
	if err := dropImportRefs(ctx, dir); err != nil {
		return nil, err
	}
	args := []string{"--git-dir=" + dir, "fetch", "--quiet", "--no-write-fetch-head", "--no-tags", "--no-auto-maintenance",
		"--", path, "+refs/heads/*:" + refImportPrefix + "heads/*", "+refs/tags/*:" + refImportPrefix + "tags/*"}
	if _, err := (gitCmd{args: args, env: bundleEnv}).run(ctx); err != nil {
		return nil, fmt.Errorf("load git objects: %w", err)
	}
	out, err := gitIn(ctx, dir, "for-each-ref", "--format=%(objectname) %(refname)", refImportPrefix)
	if err != nil {
		return nil, err
	}
	incoming := map[string]string{} // upstream name → object
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		obj, name, ok := strings.Cut(line, " ")
		if !ok || !isHex(obj) {
			continue
		}
		lines = append(lines, "delete "+name+" "+obj)
		incoming["refs/"+strings.TrimPrefix(name, refImportPrefix)] = obj
	}
	refs, err := upstreamRefsIn(ctx, dir, gated)
	if err != nil {
		return nil, err
	}
	cur := refMap(refs)
	res := &LoadResult{}
	names := make([]string, 0, len(incoming))
	for n := range incoming {
		names = append(names, n)
	}
	sort.Strings(names)
	var keeps []string
	for _, name := range names {
		obj, old := incoming[name], cur[name]
		if old == obj {
			continue
		}
		mv := RefMove{Name: name, Old: old, New: obj}
		forward := old == "" || (strings.HasPrefix(name, "refs/heads/") && isAncestor(ctx, dir, old, obj))
		if !forward && !o.Force {
			res.Refused = append(res.Refused, mv)
			info("git mirror: import would move a ref backwards or re-point a tag; kept as it is (--force moves it)", "ref", name, "current", old, "bundle", obj)
			continue
		}
		if !forward {
			keeps = append(keeps, "update "+refKeepPrefix+old+" "+old)
			res.Kept = append(res.Kept, old)
		}
		stored := name
		if b, ok := strings.CutPrefix(name, "refs/heads/"); ok && gated {
			stored = refUpstreamHeads + b
		}
		lines = append(lines, "update "+stored+" "+obj)
		res.Updated = append(res.Updated, mv)
	}
	// Keep refs first: a crash between the two leaves an extra keep ref,
	// never a moved branch whose old tip gc could take.
	if err := updateRefs(ctx, dir, dedupeKeepLines(keeps)); err != nil {
		return nil, fmt.Errorf("keep old tips: %w", err)
	}
	if err := updateRefs(ctx, dir, lines); err != nil {
		return nil, fmt.Errorf("load refs: %w", err)
	}
	return res, nil
}

func dropImportRefs(ctx context.Context, dir string) error {
	out, err := gitIn(ctx, dir, "for-each-ref", "--format=delete %(refname) %(objectname)", refImportPrefix)
	if err != nil {
		return err
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil
	}
	return updateRefs(ctx, dir, strings.Split(s, "\n"))
}
