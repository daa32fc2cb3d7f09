package gitmirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/redact"
)

// RepoStatus is the state of one mirrored repository.
type RepoStatus struct {
	ID                  string     `json:"id"`         // "<host>/<path>"
	URL                 string     `json:"url"`        // upstream
	MirrorPath          string     `json:"mirrorPath"` // "/git/<id>.git" on the edge HTTP listener
	Ready               bool       `json:"ready"`      // a local copy is served
	Head                string     `json:"head,omitempty"`
	LastAttempt         *time.Time `json:"lastAttempt,omitempty"`
	LastSuccess         *time.Time `json:"lastSuccess,omitempty"`
	LastError           string     `json:"lastError,omitempty"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	Refs                []Ref      `json:"refs"` // the upstream's branches and tags
	// Gated lists the branches advertised only once ready; Advertised is
	// what they are served at (a branch not yet ready is absent).
	Gated      []string `json:"gated,omitempty"`
	Advertised []Ref    `json:"advertised,omitempty"`
}

// Repos returns the status of every configured repository, in
// configuration order.
func (m *Mirror) Repos() []RepoStatus {
	out := make([]RepoStatus, 0, len(m.repos))
	for _, r := range m.repos {
		out = append(out, r.status())
	}
	return out
}

// Repo returns the status of one repository, by id or upstream URL.
func (m *Mirror) Repo(idOrURL string) (RepoStatus, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return RepoStatus{}, err
	}
	return r.status(), nil
}

func (r *repo) status() RepoStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := RepoStatus{
		ID:                  r.id,
		URL:                 redact.Text(r.up.URL), // shown to anonymous clients: never a credential
		MirrorPath:          "/git/" + r.id + ".git",
		Ready:               r.isReady(),
		Head:                r.head,
		LastError:           redact.Text(r.lastErr),
		ConsecutiveFailures: r.failures,
		Refs:                append([]Ref{}, r.refs...),
	}
	if !r.lastAttempt.IsZero() {
		t := r.lastAttempt.UTC()
		s.LastAttempt = &t
	}
	if !r.lastSuccess.IsZero() {
		t := r.lastSuccess.UTC()
		s.LastSuccess = &t
	}
	for name := range r.gated {
		s.Gated = append(s.Gated, name)
	}
	sort.Strings(s.Gated)
	if r.isGated() {
		s.Advertised = []Ref{}
		for name, obj := range r.advertised {
			s.Advertised = append(s.Advertised, Ref{Name: name, Object: obj, Commit: obj})
		}
		sort.Slice(s.Advertised, func(i, j int) bool { return s.Advertised[i].Name < s.Advertised[j].Name })
	}
	if s.LastError == "" && r.broken != nil {
		s.LastError = "local copy failed its check: " + redact.Text(r.broken.Error())
	}
	return s
}

// RefTips returns the current branches and tags of a repository (by id or
// upstream URL), sorted by name, as the upstream has them: for a gated
// repository, the upstream tips, not what is advertised (see Advertised).
// Tags carry the commit they resolve to.
func (m *Mirror) RefTips(ctx context.Context, idOrURL string) ([]Ref, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return nil, err
	}
	if !r.isReady() {
		return nil, ErrNotReady
	}
	return r.upstreamRefs(ctx, r.dir)
}

// MissingCommits returns those of shas (full hex object names) that the
// repository, configured or a dependency, does not hold as commits, in
// the order given: every one when it was never fetched. One git process
// answers for all of them. Errors: an unknown repository
// (ErrUnknownRepo), a name that is not full hex, git failing.
func (m *Mirror) MissingCommits(ctx context.Context, idOrURL string, shas []string) ([]string, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return nil, err
	}
	shas = append([]string(nil), shas...)
	for i, sha := range shas {
		shas[i] = strings.ToLower(sha)
		if !isHex(shas[i]) {
			return nil, fmt.Errorf("commit %q: want a full hex object name", trim(sha))
		}
	}
	if !r.isReady() {
		return shas, nil
	}
	return missingCommitsIn(ctx, r.dir, shas)
}

// missingCommitsIn asks git cat-file once which of commits (full hex)
// the repository at dir lacks as commits (absent, or another
// kind of object).
func missingCommitsIn(ctx context.Context, dir string, commits []string) ([]string, error) {
	if len(commits) == 0 {
		return nil, nil
	}
	var in strings.Builder
	for _, c := range commits {
		in.WriteString(c + "^{commit}\n")
	}
	out, err := gitCmd{args: []string{"--git-dir=" + dir, "cat-file", "--batch-check=%(objectname)"}, stdin: strings.NewReader(in.String())}.run(ctx)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(commits) {
		return nil, fmt.Errorf("git cat-file answered %d lines for %d commits", len(lines), len(commits))
	}
	var missing []string
	for i, l := range lines {
		if !strings.EqualFold(l, commits[i]) {
			missing = append(missing, commits[i]) // "<name> missing", "<name> ambiguous"
		}
	}
	return missing, nil
}

// HasCommit reports whether the repository holds commit sha (full hex).
// A repository never fetched holds nothing.
func (m *Mirror) HasCommit(ctx context.Context, idOrURL, sha string) (bool, error) {
	missing, err := m.MissingCommits(ctx, idOrURL, []string{sha})
	return err == nil && len(missing) == 0, err
}

// Object is what a full object name names in a mirrored repository.
type Object struct {
	Object string `json:"object"` // the name asked for, lowercased
	Type   string `json:"type"`   // "commit", "tag", "tree" or "blob"
	// Tags lists the annotated tag objects peeled on the way, outermost
	// first (Object itself when it is a tag); empty for anything else.
	Tags []string `json:"tags,omitempty"`
	// Target and TargetType are what the tags peel to (for a commit: the
	// commit itself).
	Target     string `json:"target"`
	TargetType string `json:"targetType"`
}

// maxTagDepth bounds how many annotated tags Resolve peels (git itself
// gives up far later; a chain this long is an attack, not a release).
const maxTagDepth = 32

// Resolve looks sha (full hex) up in the repository and peels annotated
// tags, however nested, to what they point at. found is false when the
// repository does not hold the object (or was never fetched).
func (m *Mirror) Resolve(ctx context.Context, idOrURL, sha string) (obj Object, found bool, err error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return Object{}, false, err
	}
	sha = strings.ToLower(sha)
	if !isHex(sha) {
		return Object{}, false, fmt.Errorf("object %q: want a full hex object name", trim(sha))
	}
	if !r.isReady() {
		return Object{}, false, nil
	}
	obj = Object{Object: sha}
	cur := sha
	for depth := 0; ; depth++ {
		out, err := r.git(ctx, "cat-file", "-t", cur)
		if err != nil {
			if exitCode(err) > 0 && ctx.Err() == nil {
				if depth == 0 {
					return Object{}, false, nil
				}
				return Object{}, false, fmt.Errorf("tag %s points at %s, which is missing", obj.Tags[len(obj.Tags)-1], cur)
			}
			return Object{}, false, err
		}
		typ := strings.TrimSpace(string(out))
		if depth == 0 {
			obj.Type = typ
		}
		if typ != "tag" {
			obj.Target, obj.TargetType = cur, typ
			return obj, true, nil
		}
		if depth == maxTagDepth {
			return Object{}, false, fmt.Errorf("tag %s: more than %d nested tags", sha, maxTagDepth)
		}
		obj.Tags = append(obj.Tags, cur)
		body, err := r.git(ctx, "cat-file", "tag", cur)
		if err != nil {
			return Object{}, false, fmt.Errorf("read tag %s: %w", cur, err)
		}
		next, err := tagTarget(body)
		if err != nil {
			return Object{}, false, fmt.Errorf("tag %s: %w", cur, err)
		}
		cur = next
	}
}

// tagTarget reads the "object <sha>" header of a tag object.
func tagTarget(body []byte) (string, error) {
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" {
			break // end of the headers
		}
		if v, ok := strings.CutPrefix(line, "object "); ok && isHex(v) {
			return v, nil
		}
	}
	return "", errors.New("no object header")
}

// FirstParents returns sha and up to n earlier revisions along its
// first-parent history, newest first: the tip and the rollback targets
// that keepRevisions asks to keep ready.
func (m *Mirror) FirstParents(ctx context.Context, idOrURL, sha string, n int) ([]string, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return nil, err
	}
	sha = strings.ToLower(sha)
	if !isHex(sha) {
		return nil, fmt.Errorf("commit %q: want a full hex object name", trim(sha))
	}
	if n < 0 {
		n = 0
	}
	if !r.isReady() {
		return nil, ErrNotReady
	}
	out, err := r.git(ctx, "rev-list", "--first-parent", "--max-count="+strconv.Itoa(n+1), sha+"^{commit}", "--")
	if err != nil {
		return nil, fmt.Errorf("first parents of %s in %s: %w", sha, r.id, err)
	}
	return strings.Fields(string(out)), nil
}

// APIHandler serves the JSON API:
//
//	GET /api/v1/repos                                   every repository's status
//	GET /api/v1/repos/<host>/<path>                     one repository's status
//	GET /api/v1/repos/<host>/<path>/commits/<sha>       200 if present, 404 if not
//	GET /api/v1/repos/<host>/<path>/objects/<sha>       200 with an Object (tags peeled), 404 if absent
func (m *Mirror) APIHandler() http.Handler { return http.HandlerFunc(m.serveAPI) }

func (m *Mirror) serveAPI(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apiError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, sha, objects, err := parseAPIPath(req.URL.Path)
	switch {
	case errors.Is(err, errNotAPIPath):
		apiError(w, http.StatusNotFound, "not found")
		return
	case err != nil:
		apiError(w, http.StatusBadRequest, err.Error())
		return
	case id == "":
		writeAPIJSON(w, http.StatusOK, m.Repos())
		return
	}
	r, err := m.lookup(id)
	if err != nil {
		apiError(w, http.StatusNotFound, "repository not configured")
		return
	}
	if sha == "" {
		writeAPIJSON(w, http.StatusOK, r.status())
		return
	}
	if objects {
		obj, found, err := m.Resolve(req.Context(), id, sha)
		switch {
		case err != nil:
			apiError(w, http.StatusInternalServerError, "object lookup failed: "+err.Error())
			m.log.Warn("git mirror: object lookup failed", "repo", r.id, "sha", sha, "err", err)
		case !found && !r.isReady():
			apiError(w, http.StatusNotFound, "object not present: repository not mirrored yet")
		case !found:
			apiError(w, http.StatusNotFound, "object not present in the mirror")
		default:
			writeAPIJSON(w, http.StatusOK, obj)
		}
		return
	}
	ok, err := m.HasCommit(req.Context(), id, sha)
	switch {
	case err != nil:
		apiError(w, http.StatusInternalServerError, "commit lookup failed")
		m.log.Warn("git mirror: commit lookup failed", "repo", r.id, "sha", sha, "err", err)
	case !ok && !r.isReady():
		apiError(w, http.StatusNotFound, "commit not present: repository not mirrored yet")
	case !ok:
		apiError(w, http.StatusNotFound, "commit not present in the mirror")
	default:
		writeAPIJSON(w, http.StatusOK, map[string]string{"repo": r.id, "commit": sha})
	}
}

var errNotAPIPath = errors.New("not an API path")

// parseAPIPath splits "/api/v1/repos[/<host>/<path>[/commits|objects/<sha>]]".
// An empty id means the list; an empty sha means one repository's status;
// objects tells the two object routes apart. The sha is returned lowercased
// and checked to be a full object name.
func parseAPIPath(p string) (id, sha string, objects bool, err error) {
	rest, ok := strings.CutPrefix(p, "/api/v1/repos")
	switch {
	case !ok || (rest != "" && rest[0] != '/'):
		return "", "", false, errNotAPIPath
	case rest == "" || rest == "/":
		return "", "", false, nil
	}
	rest = rest[1:]
	repoPath, sha, isCommit := cutLast(rest, "/commits/")
	if !isCommit {
		repoPath, sha, objects = cutLast(rest, "/objects/")
	}
	if !isCommit && !objects {
		repoPath = rest
	}
	if id, err = cleanRepoPath(repoPath); err != nil {
		return "", "", false, errBadRepo
	}
	if isCommit || objects {
		sha = strings.ToLower(sha)
		if !isHex(sha) {
			return "", "", false, errors.New("object: want a full 40- or 64-character hex object name")
		}
	}
	return id, sha, objects, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func writeAPIJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeAPIJSON(w, code, map[string]string{"error": msg})
}

// IsUnknownRepo reports whether err says the repository is not configured.
func IsUnknownRepo(err error) bool { return errors.Is(err, ErrUnknownRepo) }
