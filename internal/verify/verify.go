// Package verify is the gate: it decides whether a revision may be
// deployed, by asking the edge whether the commit is in the git mirror and
// the revision's bundle is complete in the edge registry. Anything it
// cannot establish (an unreachable mirror or registry) is "not ready":
// never a false yes.
package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
)

// Options say what to verify and where the edge is.
type Options struct {
	RepoURL   string // upstream URL, as in the edge config
	Revision  string // full 40-hex commit SHA
	MirrorURL string // the edge daemon's HTTP base, e.g. http://edge:8080
	Registry  string // the edge registry, host:port, plain HTTP
	// Activate re-points moved tags to this revision's digests through the
	// daemon (a rollback) and records the revision as deployed.
	Activate bool
	// Deep re-hashes every blob instead of trusting the digests sync
	// verified when it wrote them.
	Deep bool
	// Concurrency bounds parallel registry requests. The default value is 16.
	Concurrency int
	// Report sends the outcome to the daemon for its status page. Failures
	// to report are ignored.
	Report bool
	// Token is the daemon's API token, sent as a bearer token with
	// Activate and Report (the daemon refuses both without it).
	Token apiauth.Token
	// HTTPClient for the mirror API; the default has a 5 s timeout.
	HTTPClient *http.Client
	// Transport for registry requests; the default is one pooled transport
	// with a 3 s dial timeout.
	Transport http.RoundTripper
}

// Result is the gate's answer.
type Result struct {
	Ready    bool   `json:"ready"`
	Repo     string `json:"repo"`
	Revision string `json:"revision"`
	// Requested is the revision asked for when it was an annotated tag
	// object that the gate peeled to the commit Revision; PeeledTags lists
	// the tag objects peeled, outermost first.
	Requested     string   `json:"requestedRevision,omitempty"`
	PeeledTags    []string `json:"peeledTags,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	CommitPresent bool     `json:"commitPresent"`
	BundlePresent bool     `json:"bundlePresent"`
	Images        int      `json:"images"`           // image entries of the bundle
	Charts        int      `json:"charts,omitempty"` // Helm chart and OCI source entries
	// Attached counts signature, attestation and SBOM entries carried for
	// the images (docs/trust.md).
	Attached int              `json:"attached,omitempty"`
	Blobs    int              `json:"blobs"`
	Bytes    int64            `json:"bytes"`
	Missing  []bundle.Missing `json:"missing,omitempty"`
	// LFSObjects counts the LFS objects the revision's files point at;
	// LFSMissing lists those not on site (and LFSMalformed the pointer
	// files that are not valid), which make the revision not ready.
	LFSObjects   int            `json:"lfsObjects,omitempty"`
	LFSMissing   []LFSMissing   `json:"lfsMissing,omitempty"`
	LFSMalformed []LFSMalformed `json:"lfsMalformed,omitempty"`
	MissingBytes int64          `json:"missingBytes,omitempty"`
	Activated    bool           `json:"activated,omitempty"`
	SyncState    string         `json:"syncState,omitempty"`
	SyncPercent  float64        `json:"syncPercent,omitempty"`
	SyncETA      float64        `json:"syncEtaSeconds,omitempty"`
	// SyncMissing names, as sync last saw them, the bundle's entries not
	// on site yet ("chart cert-manager 1.15.0 from …: not on site"): what
	// a bundle whose index is not here yet waits for.
	SyncMissing []string `json:"syncMissing,omitempty"`
	// GitDeps counts the submodule and remote base commits the bundle
	// records; GitDepsMissing names those the mirror lacks.
	GitDeps        int      `json:"gitDeps,omitempty"`
	GitDepsMissing []string `json:"gitDepsMissing,omitempty"`
	// GitRefsMoved names the remote bases pinned by a moving ref (a
	// branch or tag) that the mirror advertises at another commit than
	// the one the bundle recorded.
	GitRefsMoved []string `json:"gitRefsMoved,omitempty"`
	Platforms    []string `json:"platforms"`
	Seconds      float64  `json:"seconds"`
}

// Run verifies. The error is for bad options only; everything else,
// unreachable edges included, is a not-ready Result with a reason.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	// The same URL rules as the edge config: a credential in --repo would
	// be printed in the hook Job's log and sent to the mirror API.
	id, err := config.ValidateGitURL(o.RepoURL)
	if err != nil {
		return nil, fmt.Errorf("--repo: %w", err)
	}
	if _, err := imageref.BundleRepository(o.RepoURL); err != nil {
		return nil, fmt.Errorf("--repo: %w", err)
	}
	if err := checkRevision(o.Revision); err != nil {
		return nil, err
	}
	if o.MirrorURL == "" || o.Registry == "" {
		return nil, errors.New("--mirror and --registry are required")
	}
	if err := checkEndpoints(o.MirrorURL, o.Registry); err != nil {
		return nil, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second, Transport: newTransport()}
	}
	if o.Transport == nil {
		o.Transport = newTransport()
	}
	v := &verifier{o: o, id: id, mirror: strings.TrimRight(o.MirrorURL, "/")}
	res := v.run(ctx)
	res.Seconds = time.Since(start).Seconds()
	if o.Report {
		v.report(ctx, res)
	}
	return res, nil
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
	}
}

type verifier struct {
	o      Options
	id     string
	mirror string
}

func (v *verifier) run(ctx context.Context) *Result {
	res := &Result{Repo: v.o.RepoURL, Revision: v.o.Revision, Platforms: []string{}}
	// 1. The commit, in the mirror.
	obj, found, err := v.resolve(ctx)
	if errors.Is(err, errRepoNotConfigured) {
		res.Reason = fmt.Sprintf("the git mirror has no repository %s: --repo must be the upstream URL exactly as in "+
			"the edge config's repositories[].url, not the mirror URL", v.id)
		return res
	}
	if err != nil {
		res.Reason = "git mirror unreachable: " + err.Error()
		return res
	}
	if !found {
		res.Reason = fmt.Sprintf("commit %s is not in the git mirror", short(v.o.Revision))
		return res
	}
	if reason := notACommit(obj); reason != "" {
		res.Reason = reason
		return res
	}
	if len(obj.Tags) > 0 {
		// An annotated tag's SHA: its bundle is the commit's.
		res.Requested, res.PeeledTags = v.o.Revision, obj.Tags
		res.Revision = obj.Target
		v.o.Revision = obj.Target
	}
	res.CommitPresent = true
	// 1b. The LFS objects its files point at, in the mirror's LFS store.
	if reason, err := v.checkLFS(ctx, res); err != nil {
		res.Reason = "git mirror unreachable: " + err.Error()
		return res
	} else if reason != "" {
		res.Reason = reason
		return res
	}
	// 2. The edge's platform selection, so completeness is judged as sync
	// judges it.
	plats, err := v.platforms(ctx)
	if err != nil {
		res.Reason = "edge API unreachable: " + err.Error()
		return res
	}
	res.Platforms = plats
	sel, err := oci.ParsePlatforms(strings.Join(plats, ","))
	if err != nil {
		res.Reason = "edge platforms: " + err.Error()
		return res
	}
	// 3. The bundle, in the registry.
	rep, err := v.check(ctx, sel)
	if err != nil {
		res.Reason = "edge registry unreachable: " + err.Error()
		return res
	}
	v.fill(res, rep)
	// The trust policy is the daemon's (edge config trust): a bundle it
	// refuses is never ready, even one landed before the policy or a key
	// changed.
	if reason := v.untrusted(ctx); reason != "" {
		res.SyncState = untrustedState
		res.Reason = fmt.Sprintf("bundle of %s is untrusted: %s", short(res.Revision), reason)
		return res
	}
	// Every ready activation is recorded, whether or not a tag has to move:
	// the first deployment of a revision usually finds its tags in place
	// (sync set them), and an unrecorded deployment is one retention may
	// delete once a newer revision arrives.
	if v.o.Activate && res.BundlePresent && (len(rep.Missing) == 0 || onlyTags(rep.Missing)) {
		if err := v.activate(ctx); err != nil {
			res.Reason = "activate: " + err.Error()
			return res
		}
		res.Activated = true
		if rep, err = v.check(ctx, sel); err != nil {
			res.Reason = "edge registry unreachable: " + err.Error()
			return res
		}
		v.fill(res, rep)
	}
	if len(rep.Missing) == 0 && v.o.Deep {
		if err := v.deep(ctx, rep, sel); err != nil {
			res.Reason = err.Error()
			return res
		}
		v.fill(res, rep)
	}
	if len(rep.Missing) > 0 {
		v.syncProgress(ctx, res)
		res.Reason = describe(rep, res)
		return res
	}
	// 4. The other repositories the revision needs (submodules, remote
	// bases), in the mirror.
	if rep.Bundle != nil && len(rep.Bundle.GitDeps) > 0 {
		res.GitDeps = len(rep.Bundle.GitDeps)
		missing, err := v.gitDepsMissing(ctx, rep.Bundle)
		if err != nil {
			res.Reason = "git mirror unreachable: " + err.Error()
			return res
		}
		if len(missing) > 0 {
			res.GitDepsMissing = missing
			res.Reason = gitDepsReason(missing)
			return res
		}
		moved, err := v.gitRefsMoved(ctx, rep.Bundle)
		if err != nil {
			res.Reason = "git mirror unreachable: " + err.Error()
			return res
		}
		if len(moved) > 0 {
			res.GitRefsMoved = moved
			res.Reason = gitRefsReason(res.Revision, moved, res.Activated)
			return res
		}
		lines, lfsMissing, err := v.depsLFSMissing(ctx, rep.Bundle)
		if err != nil {
			res.Reason = "git mirror unreachable: " + err.Error()
			return res
		}
		if len(lines) > 0 {
			res.LFSMissing = append(res.LFSMissing, lfsMissing...)
			res.Reason = depsLFSReason(lines)
			return res
		}
	}
	res.Ready = true
	return res
}

func (v *verifier) fill(res *Result, rep *bundle.Report) {
	res.BundlePresent = rep.Bundle != nil
	res.Missing = rep.Missing
	res.Blobs, res.Bytes = rep.Blobs, rep.Bytes
	res.MissingBytes = 0
	res.Images, res.Charts, res.Attached = 0, 0, 0
	if rep.Bundle != nil {
		for _, im := range rep.Bundle.Images {
			if im.Attached != nil {
				res.Attached++
			} else if im.Chart != nil {
				res.Charts++
			} else {
				res.Images++
			}
		}
	}
}

func onlyTags(ms []bundle.Missing) bool {
	if len(ms) == 0 {
		return false
	}
	for _, m := range ms {
		if m.What != "tag" {
			return false
		}
	}
	return true
}

func describe(rep *bundle.Report, res *Result) string {
	if rep.Bundle == nil {
		s := fmt.Sprintf("bundle of %s is not in the edge registry", short(res.Revision))
		if res.SyncState != "" {
			s += fmt.Sprintf(" (sync: %s", res.SyncState)
			if res.SyncPercent > 0 {
				s += fmt.Sprintf(", %.0f%%", res.SyncPercent)
			}
			if res.SyncETA > 0 {
				s += fmt.Sprintf(", about %s left", (time.Duration(res.SyncETA) * time.Second).Round(time.Second))
			}
			s += ")"
		}
		for i, m := range res.SyncMissing {
			if i == maxNamed {
				break
			}
			s += "; " + truncate(m, 512)
		}
		return s
	}
	counts := map[string]int{}
	for _, m := range rep.Missing {
		counts[m.What]++
	}
	var parts []string
	for _, w := range []string{"manifest", "blob", "tag", "bundle index"} {
		if counts[w] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s(s)", counts[w], w))
		}
	}
	s := fmt.Sprintf("bundle of %s is incomplete: ", short(res.Revision))
	if named := entriesMissing(rep); len(named) > 0 {
		s += strings.Join(named, "; ") + "; "
	}
	s += fmt.Sprintf("%s missing or wrong; first: %s", strings.Join(parts, ", "), rep.Missing[0])
	if counts["tag"] > 0 && len(parts) == 1 {
		s += " (run with --activate to re-point tags for this revision)"
	}
	return s
}

// maxNamed bounds how many entries a reason names.
const maxNamed = 5

// entriesMissing names, in bundle order, each entry (image, chart or OCI
// source: bundle.Image.Name) whose content is not all on site: "chart
// cert-manager 1.15.0 from https://charts.example.com/stable: not on site"
// when its manifest is absent, "…: incomplete (2 missing)" otherwise. A
// tag that points elsewhere is left to the counts (--activate fixes it).
func entriesMissing(rep *bundle.Report) []string {
	type state struct {
		root  bool // its own manifest is missing or wrong
		parts int
	}
	by := map[string]*state{}
	roots := map[string]string{} // entry reference → its manifest's digest
	for _, im := range rep.Bundle.Images {
		by[im.Ref.String()] = &state{}
		roots[im.Ref.String()] = im.Descriptor.Digest.String()
	}
	for _, m := range rep.Missing {
		st := by[m.Image]
		if st == nil || m.What == "tag" {
			continue
		}
		st.parts++
		if m.What == "manifest" && m.Digest == roots[m.Image] {
			st.root = true
		}
	}
	var out []string
	more := 0
	for _, im := range rep.Bundle.Images {
		st := by[im.Ref.String()]
		if st.parts == 0 {
			continue
		}
		if len(out) == maxNamed {
			more++
			continue
		}
		if st.root {
			out = append(out, im.Name()+": not on site")
		} else {
			out = append(out, fmt.Sprintf("%s: incomplete (%d missing)", im.Name(), st.parts))
		}
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("%d more entries incomplete", more))
	}
	return out
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func (v *verifier) get(ctx context.Context, path string, into any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.mirror+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := v.o.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if into != nil && resp.StatusCode == http.StatusNotFound {
		// Best effort: a 404 may carry the mirror's {"error": …}, or not.
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(into)
	}
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(into); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

// object is the mirror's answer about an object name (gitmirror.Object).
type object struct {
	Object     string   `json:"object"`
	Type       string   `json:"type"`
	Tags       []string `json:"tags"`
	Target     string   `json:"target"`
	TargetType string   `json:"targetType"`
	// Error is the mirror's reason on a 404.
	Error string `json:"error"`
}

// errRepoNotConfigured: the mirror does not serve the repository --repo names.
var errRepoNotConfigured = errors.New("repository not configured in the mirror")

// resolve asks the mirror what the revision names, annotated tags peeled.
func (v *verifier) resolve(ctx context.Context) (object, bool, error) {
	var obj object
	code, err := v.get(ctx, "/api/v1/repos/"+v.id+"/objects/"+v.o.Revision, &obj)
	if err != nil {
		return object{}, false, err
	}
	switch code {
	case http.StatusOK:
		if obj.Type == "" || obj.TargetType == "" || (obj.TargetType == "commit" && !bundle.IsRevision(obj.Target)) {
			return object{}, false, fmt.Errorf("object lookup: malformed answer %+v", obj)
		}
		return obj, true, nil
	case http.StatusNotFound:
		if obj.Error == "repository not configured" {
			return object{}, false, errRepoNotConfigured
		}
		return object{}, false, nil
	default:
		return object{}, false, fmt.Errorf("object lookup answered HTTP %d", code)
	}
}

// notACommit says why an object that is present cannot be deployed, or ""
// when it is a commit or tags that peel to one.
func notACommit(o object) string {
	switch {
	case o.TargetType == "commit":
		return ""
	case len(o.Tags) > 0:
		return fmt.Sprintf("revision %s is an annotated tag object that points at a %s (%s), not a commit", short(o.Object), o.TargetType, short(o.Target))
	default:
		return fmt.Sprintf("revision %s is a %s in the git mirror, not a commit", short(o.Object), o.Type)
	}
}

// checkRevision accepts a full 40-hex SHA and says what else it got.
func checkRevision(rev string) error {
	switch {
	case bundle.IsRevision(rev):
		return nil
	case isHex(rev) && len(rev) < 40:
		return fmt.Errorf("--revision %q: a short SHA; give the full 40-hex commit SHA (git rev-parse %s)", rev, rev)
	case isHex(rev) && strings.ToLower(rev) != rev && bundle.IsRevision(strings.ToLower(rev)):
		return fmt.Errorf("--revision %q: give the SHA in lowercase", rev)
	case isHex(rev):
		return fmt.Errorf("--revision %q: %d hex digits; want a full 40-hex commit SHA", rev, len(rev))
	default:
		return fmt.Errorf("--revision %q: want a full 40-hex commit SHA, not a branch or tag name", rev)
	}
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

func (v *verifier) platforms(ctx context.Context) ([]string, error) {
	var info struct {
		Platforms []string `json:"platforms"`
	}
	code, err := v.get(ctx, "/api/v1/edge", &info)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/api/v1/edge answered HTTP %d", code)
	}
	if info.Platforms == nil {
		info.Platforms = []string{}
	}
	return info.Platforms, nil
}

func (v *verifier) syncProgress(ctx context.Context, res *Result) {
	var st struct {
		Repos []struct {
			Repo      string `json:"repo"`
			Revisions []struct {
				Revision   string   `json:"revision"`
				State      string   `json:"state"`
				BytesDone  int64    `json:"bytesDone"`
				BytesTotal int64    `json:"bytesTotal"`
				ETASeconds float64  `json:"etaSeconds"`
				Missing    []string `json:"missing"`
			} `json:"revisions"`
		} `json:"repos"`
	}
	if code, err := v.get(ctx, "/api/v1/sync", &st); err != nil || code != http.StatusOK {
		return
	}
	for _, r := range st.Repos {
		if !strings.EqualFold(r.Repo, v.id) {
			continue
		}
		for _, rv := range r.Revisions {
			if rv.Revision == v.o.Revision {
				res.SyncState = rv.State
				if rv.BytesTotal > 0 {
					res.SyncPercent = 100 * float64(rv.BytesDone) / float64(rv.BytesTotal)
					res.MissingBytes = rv.BytesTotal - rv.BytesDone
				}
				res.SyncETA = rv.ETASeconds
				res.SyncMissing = rv.Missing
			}
		}
	}
	if res.SyncState == "" {
		res.SyncState = "not wanted by sync (not a tracked ref's tip or recent history)"
	}
}

// untrustedState is sync's state of a revision the trust policy refuses
// (syncer.StateUntrusted; verify does not import sync).
const untrustedState = "untrusted"

// untrusted returns why sync's trust policy refuses the revision's
// bundle, or "" when it does not (or the daemon cannot say: the registry
// check stands alone then).
func (v *verifier) untrusted(ctx context.Context) string {
	var st struct {
		Repos []struct {
			Repo      string `json:"repo"`
			Revisions []struct {
				Revision string `json:"revision"`
				State    string `json:"state"`
				Error    string `json:"error"`
			} `json:"revisions"`
		} `json:"repos"`
	}
	if code, err := v.get(ctx, "/api/v1/sync", &st); err != nil || code != http.StatusOK {
		return ""
	}
	for _, r := range st.Repos {
		if !strings.EqualFold(r.Repo, v.id) {
			continue
		}
		for _, rv := range r.Revisions {
			if rv.Revision == v.o.Revision && rv.State == untrustedState {
				if rv.Error == "" {
					return "refused by the edge's trust policy"
				}
				return truncate(rv.Error, 1024)
			}
		}
	}
	return ""
}

func (v *verifier) activate(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"repo": v.o.RepoURL, "revision": v.o.Revision})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.mirror+"/api/v1/activate", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	v.o.Token.SetHeader(req)
	client := *v.o.HTTPClient
	client.Timeout = 35 * time.Second
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

func (v *verifier) report(ctx context.Context, res *Result) {
	body, _ := json.Marshal(map[string]any{"repo": v.o.RepoURL, "revision": v.o.Revision, "allowed": res.Ready, "reason": truncate(res.Reason, 4000)})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.mirror+"/api/v1/verifications", strings.NewReader(string(body)))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	v.o.Token.SetHeader(req)
	if resp, err := v.o.HTTPClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// check runs the one completeness check of package bundle with its
// registry requests made in parallel: a first walk fetches the manifests
// (it needs them to go on) and records every blob and tag lookup; those are
// then done at once over one connection pool; a second walk answers from
// what was fetched.
func (v *verifier) check(ctx context.Context, sel oci.Platforms) (*bundle.Report, error) {
	bundleRepo, err := imageref.BundleRepository(v.o.RepoURL)
	if err != nil {
		return nil, err
	}
	real := registryclient.NewPresence(v.o.Registry, registryclient.WithInsecure(true), registryclient.WithTransport(v.o.Transport),
		registryclient.WithKeychain(authn.NewMultiKeychain()))
	c := &cachingPresence{real: real, bundleRepo: bundleRepo, recording: true, blobs: map[key]result{}, tags: map[key]result{}, manifests: map[key][]byte{}}
	l := bundle.Placement{BundleRepo: bundleRepo, ImageRepo: func(r imageref.Ref) string { return r.EdgeRepository() }, CheckTags: true}
	if err := c.record(ctx, bundleRepo, v.o.Revision, sel, v.o.Concurrency); err != nil {
		return nil, err
	}
	if err := c.resolve(ctx, v.o.Concurrency); err != nil {
		return nil, err
	}
	c.recording = false
	return bundle.CheckComplete(ctx, c, l, v.o.Revision, sel)
}

// deep re-hashes every blob the bundle reaches.
func (v *verifier) deep(ctx context.Context, rep *bundle.Report, sel oci.Platforms) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.o.Concurrency)
	var mu sync.Mutex
	for _, im := range rep.Bundle.Images {
		repo := im.Ref.EdgeRepository()
		src, err := registryclient.New(v.o.Registry+"/"+repo, registryclient.WithInsecure(true), registryclient.WithTransport(v.o.Transport), registryclient.WithKeychain(authn.NewMultiKeychain()))
		if err != nil {
			return err
		}
		var blobs []v1.Descriptor
		err = oci.Walk(ctx, src, im.Descriptor, sel, func(n oci.Node) error {
			if n.Raw == nil {
				blobs = append(blobs, n.Descriptor)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("deep check of %s: %w", im.Ref, err)
		}
		for _, b := range blobs {
			g.Go(func() error {
				rc, err := src.OpenBlob(gctx, b, 0)
				if err != nil {
					return fmt.Errorf("blob %s@%s: %w", repo, b.Digest, err)
				}
				defer rc.Close()
				h := sha256.New()
				n, err := io.Copy(h, rc)
				if err != nil {
					return fmt.Errorf("blob %s@%s: %w", repo, b.Digest, err)
				}
				if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != b.Digest.String() || n != b.Size {
					mu.Lock()
					rep.Missing = append(rep.Missing, bundle.Missing{Repo: repo, Image: im.Ref.String(), Digest: b.Digest.String(), What: "blob",
						Detail: fmt.Sprintf("content hashes to %s (%d bytes)", got, n)})
					mu.Unlock()
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// checkEndpoints refuses a --mirror that is not an http(s) base URL and a
// --registry that is not host:port: bad input, not a network problem.
func checkEndpoints(mirror, registry string) error {
	u, err := url.Parse(mirror)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("--mirror %q: want the edge's http base URL, e.g. http://ballast-edge.ballast.svc:8080", mirror)
	}
	if host, port, err := net.SplitHostPort(registry); err != nil || host == "" || port == "" ||
		strings.ContainsAny(registry, "/@?# ") {
		return fmt.Errorf("--registry %q: want the edge registry's host:port, no scheme or path, e.g. ballast-edge-registry.ballast.svc:5000", registry)
	}
	return nil
}
