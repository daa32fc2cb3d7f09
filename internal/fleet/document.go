// Package fleet is the fleet view (issue 18): each edge publishes a small
// status document to a per-site repository of a registry it already talks
// to (Publisher), and `ballast fleet` on the hub reads every site's latest
// document (Read) and shows, per site and revision, what is ready, deployed
// and pending, and how old that information is (Table, WriteHTML).
//
// On the wire a site's status is an OCI artifact tagged "latest" in
// <repository>/<site>:
//
//	manifest (application/vnd.oci.image.manifest.v1+json)
//	  artifactType: application/vnd.ballast.site-status.v1+json
//	  config:       the empty descriptor ({}, application/vnd.oci.empty.v1+json)
//	  layers[0]:    the Document, JSON, mediaType application/vnd.ballast.site-status.v1+json
//	  annotations:  io.ballast.fleet.published  (RFC 3339, UTC: when the edge last published)
//	                io.ballast.fleet.changed    (RFC 3339, UTC: when the Document last changed)
//	                io.ballast.fleet.link       (RFC 3339, UTC: last successful upstream fetch; optional)
//
// With a signing key (PublisherOptions.Signer) the site also writes the
// document's own manifest (the same without annotations, DocumentManifest)
// tagged "document", and cosign's signature of it tagged sha256-<hex>.sig;
// `ballast fleet --key` verifies it (Keys) and shows a site without a
// valid signature as StateUntrusted.
//
// The document holds no clock readings that change by themselves, so an
// edge whose state did not change re-publishes only the manifest (about
// 600 bytes) at its heartbeat interval, and nothing in between; the
// signature, which covers the document and not the heartbeat, stays valid.
package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Media types of the status artifact.
const (
	// ArtifactType is the manifest's artifactType and the document layer's
	// media type.
	ArtifactType = "application/vnd.ballast.site-status.v1+json"
	// EmptyConfigType is the OCI 1.1 empty descriptor's media type, used
	// as the config of the artifact.
	EmptyConfigType = "application/vnd.oci.empty.v1+json"
	// Tag is the tag every site's latest document is written under.
	Tag = "latest"

	// AnnotationPublished is when the edge last published (a heartbeat
	// moves it even when nothing changed).
	AnnotationPublished = "io.ballast.fleet.published"
	// AnnotationChanged is when the document's content last changed.
	AnnotationChanged = "io.ballast.fleet.changed"
	// AnnotationLink is the site's last successful upstream contact (git
	// mirror fetch), to the minute; absent when unknown.
	AnnotationLink = "io.ballast.fleet.link"
)

// Limits of a document. Publishers trim to them; readers refuse more.
const (
	// MaxDocumentSize is the largest document, in bytes.
	MaxDocumentSize = 64 << 10
	// MaxRepos is the most repositories a document lists.
	MaxRepos = 64
	// MaxRevisions is the most revisions of each kind (ready, pending) a
	// repository lists; publishers keep the newest.
	MaxRevisions = 20
	// MaxErrors is the most error lines per repository or site.
	MaxErrors = 8
	// MaxErrorLen is the longest error line, in bytes.
	MaxErrorLen = 300
)

// SchemaVersion is the Document schema this code writes and reads.
const SchemaVersion = 1

// Document is one site's status: what it has ready, deployed and pending,
// per repository. It holds no timestamps (see the package doc), so its
// hash changes only when the site's state does.
type Document struct {
	Schema  int    `json:"schema"`  // SchemaVersion
	Site    string `json:"site"`    // the site's name (fleet.site in its edge config)
	Version string `json:"version"` // ballast version of the edge
	Repos   []Repo `json:"repos"`
	// Budget is the metered-link budget use, when the edge has a budget
	// configured (issue 16); nil otherwise.
	Budget *Budget `json:"budget,omitempty"`
	// Errors are site-wide problems (e.g. the disk), redacted.
	Errors []string `json:"errors,omitempty"`
}

// Repo is one mirrored repository's revisions at the site.
type Repo struct {
	ID string `json:"id"` // repository id, <host>/<path> (imageref.RepoID)
	// Tracked are the tracked refs and the newest revision of each whose
	// bundle is complete at the site ("" when none is).
	Tracked []TrackedRef `json:"tracked,omitempty"`
	// Deployed is the revision the gate last let Argo CD deploy ("" if
	// none yet).
	Deployed string `json:"deployed,omitempty"`
	// Ready are the revisions whose bundle is complete, newest first.
	Ready []string `json:"ready"`
	// Pending are wanted revisions not complete yet, newest first.
	Pending []Pending `json:"pending,omitempty"`
	// Errors are this repository's mirror and sync errors, redacted.
	Errors []string `json:"errors,omitempty"`
}

// TrackedRef is a tracked branch or tag and its newest ready revision.
type TrackedRef struct {
	Name  string `json:"name"`            // refs/heads/main
	Ready string `json:"ready,omitempty"` // 40-hex revision, or "" when none is ready
}

// Pending is a revision on its way to the site.
type Pending struct {
	Revision string `json:"revision"`
	State    string `json:"state"` // syncer state: pending, syncing, failed, …
	// Percent is how much of the bundle is on site, in steps of 5 so the
	// document does not change with every megabyte.
	Percent int `json:"percent"`
	// ETAMinutes is the sync's estimate of the remaining time at the
	// moment of publishing, rounded up to minutes, while the revision is
	// syncing; 0 otherwise or when unknown.
	ETAMinutes int `json:"etaMinutes,omitempty"`
	// CompleteBy is the forecast of when the revision will be complete
	// (its missing bytes, those ahead of it, the measured rate, windows
	// and budget), RFC 3339 UTC rounded up to the quarter hour so that
	// the document stays the same while the forecast does; "" when none.
	CompleteBy string `json:"completeBy,omitempty"`
	// SizeKnownAt, for a revision whose bundle index was never read, is
	// when the link policy next lets the edge read it (RFC 3339 UTC, to
	// the minute); "" otherwise.
	SizeKnownAt string `json:"sizeKnownAt,omitempty"`
}

// Budget is the use of a metered link's budget in its tightest period
// (the one with the least left), from the edge's budget ledger.
type Budget struct {
	// UsedBytes is rounded down to a step of 1% of the limit (at least
	// 1 MB), so the document changes a hundred times a period at most.
	UsedBytes  int64 `json:"usedBytes"`
	LimitBytes int64 `json:"limitBytes,omitempty"` // 0: no limit
	// Period names the period and which one: "day 2026-12-04",
	// "week 2026-11-30" (its Monday), "month 2026-12", in the link's zone.
	Period string `json:"period,omitempty"`
}

// siteName is a site name: a single OCI repository path component, at
// most 63 characters.
var siteName = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// ValidSiteName reports whether s can name a site (and so one repository
// path component): lowercase letters, digits and inner '.', '_', '-', at
// most 63 characters.
func ValidSiteName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 63 || !siteName.MatchString(s) {
		return fmt.Errorf("%q: not a site name (lowercase letters, digits, inner . _ -; at most 63 characters)", clip(s, 80))
	}
	return nil
}

var hexRevision = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// Encode returns the canonical JSON of d (the bytes that are published and
// hashed) after checking it is valid. d is not changed.
func Encode(d Document) ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode status document: %w", err)
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("status document: %d bytes, more than %d", len(b), MaxDocumentSize)
	}
	return b, nil
}

// Hash is the hex sha256 of an encoded document: the digest its layer is
// stored under.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Parse reads a document from outside input (a registry): at most
// MaxDocumentSize bytes of strict JSON (no unknown fields, no trailing
// data) in schema SchemaVersion, every field within its limits. Errors say
// which field is wrong.
func Parse(b []byte) (Document, error) {
	var d Document
	if len(b) > MaxDocumentSize {
		return d, fmt.Errorf("status document: %d bytes, more than %d", len(b), MaxDocumentSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("status document: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Document{}, errors.New("status document: trailing data after the JSON object")
	}
	if err := d.validate(); err != nil {
		return Document{}, err
	}
	return d, nil
}

func (d Document) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("status document: "+format, a...)
	}
	if d.Schema != SchemaVersion {
		return bad("schema %d: this ballast reads schema %d", d.Schema, SchemaVersion)
	}
	if err := ValidSiteName(d.Site); err != nil {
		return bad("site: %v", err)
	}
	if err := checkText("version", d.Version, 64); err != nil {
		return bad("%v", err)
	}
	if len(d.Repos) > MaxRepos {
		return bad("repos: %d, more than %d", len(d.Repos), MaxRepos)
	}
	if err := checkErrors("errors", d.Errors); err != nil {
		return bad("%v", err)
	}
	if b := d.Budget; b != nil {
		if b.UsedBytes < 0 || b.LimitBytes < 0 {
			return bad("budget: negative bytes")
		}
		if err := checkText("budget.period", b.Period, 32); err != nil {
			return bad("%v", err)
		}
	}
	for i, r := range d.Repos {
		key := fmt.Sprintf("repos[%d]", i)
		if r.ID == "" {
			return bad("%s.id: empty", key)
		}
		if err := checkText(key+".id", r.ID, 256); err != nil {
			return bad("%v", err)
		}
		if r.Deployed != "" && !hexRevision.MatchString(r.Deployed) {
			return bad("%s.deployed: %q is not a revision", key, clip(r.Deployed, 80))
		}
		if len(r.Tracked) > MaxRevisions {
			return bad("%s.tracked: %d, more than %d", key, len(r.Tracked), MaxRevisions)
		}
		for j, t := range r.Tracked {
			if err := checkText(fmt.Sprintf("%s.tracked[%d].name", key, j), t.Name, 256); err != nil || t.Name == "" {
				return bad("%s.tracked[%d].name: empty or not text", key, j)
			}
			if t.Ready != "" && !hexRevision.MatchString(t.Ready) {
				return bad("%s.tracked[%d].ready: %q is not a revision", key, j, clip(t.Ready, 80))
			}
		}
		if len(r.Ready) > MaxRevisions || len(r.Pending) > MaxRevisions {
			return bad("%s: more than %d revisions", key, MaxRevisions)
		}
		for j, rev := range r.Ready {
			if !hexRevision.MatchString(rev) {
				return bad("%s.ready[%d]: %q is not a revision", key, j, clip(rev, 80))
			}
		}
		for j, p := range r.Pending {
			if !hexRevision.MatchString(p.Revision) {
				return bad("%s.pending[%d].revision: %q is not a revision", key, j, clip(p.Revision, 80))
			}
			if err := checkText(fmt.Sprintf("%s.pending[%d].state", key, j), p.State, 32); err != nil {
				return bad("%v", err)
			}
			if p.Percent < 0 || p.Percent > 100 {
				return bad("%s.pending[%d].percent: %d is not 0 to 100", key, j, p.Percent)
			}
			if p.ETAMinutes < 0 {
				return bad("%s.pending[%d].etaMinutes: negative", key, j)
			}
			for _, f := range []struct{ name, v string }{{"completeBy", p.CompleteBy}, {"sizeKnownAt", p.SizeKnownAt}} {
				if f.v == "" {
					continue
				}
				if _, err := time.Parse(time.RFC3339, f.v); err != nil || len(f.v) > 40 {
					return bad("%s.pending[%d].%s: %q is not an RFC 3339 time", key, j, f.name, clip(f.v, 80))
				}
			}
		}
		if err := checkErrors(key+".errors", r.Errors); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

func checkErrors(key string, errs []string) error {
	if len(errs) > MaxErrors {
		return fmt.Errorf("%s: %d lines, more than %d", key, len(errs), MaxErrors)
	}
	for i, e := range errs {
		if err := checkText(fmt.Sprintf("%s[%d]", key, i), e, MaxErrorLen); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses control characters, invalid UTF-8 and over-long text:
// whatever a document says ends up in a terminal and a web page.
func checkText(key, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes, more than %d", key, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: invalid UTF-8", key)
	}
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("%s: control character %U", key, r)
	}
	return nil
}

// isControl reports characters that act on a terminal or on the text around
// them rather than show as themselves: C0 and C1 controls, and Unicode
// format characters (category Cf: bidirectional overrides and isolates such
// as U+202E, zero-width characters) and line/paragraph separators, with
// which a site could reorder or hide what an operator reads.
func isControl(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ClipError makes one error line fit a document: control characters
// become spaces, and it is cut at MaxErrorLen bytes on a rune boundary.
func ClipError(s string) string {
	s = strings.Map(func(r rune) rune {
		if isControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if len(s) <= MaxErrorLen {
		return s
	}
	cut := MaxErrorLen - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Fit cuts d to the document limits, keeping the first (newest) entries of
// each list and clipping error lines, so a busy site still publishes.
func Fit(d Document) Document {
	if len(d.Repos) > MaxRepos {
		d.Repos = d.Repos[:MaxRepos]
	}
	d.Errors = fitErrors(d.Errors)
	d.Version = clipText(d.Version, 64)
	if d.Budget != nil {
		b := *d.Budget
		b.Period = clipText(b.Period, 32)
		d.Budget = &b
	}
	repos := make([]Repo, len(d.Repos))
	for i, r := range d.Repos {
		r.ID = clipText(r.ID, 256)
		if len(r.Tracked) > MaxRevisions {
			r.Tracked = r.Tracked[:MaxRevisions]
		}
		tracked := make([]TrackedRef, len(r.Tracked))
		for j, t := range r.Tracked {
			t.Name = clipText(t.Name, 256)
			tracked[j] = t
		}
		if r.Tracked != nil {
			r.Tracked = tracked
		}
		if len(r.Ready) > MaxRevisions {
			r.Ready = r.Ready[:MaxRevisions]
		}
		if len(r.Pending) > MaxRevisions {
			r.Pending = r.Pending[:MaxRevisions]
		}
		r.Errors = fitErrors(r.Errors)
		repos[i] = r
	}
	d.Repos = repos
	return d
}

// clipText makes s fit a text field of max bytes: control characters
// become spaces, and it is cut on a rune boundary.
func clipText(s string, max int) string {
	s = ClipError(s)
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func fitErrors(errs []string) []string {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) > MaxErrors {
		errs = errs[:MaxErrors]
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = ClipError(e)
	}
	return out
}
