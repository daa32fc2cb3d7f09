package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/trust"
)

// Publishing defaults (edge config fleet.interval and fleet.heartbeat).
const (
	// DefaultInterval is how often the edge looks whether its document
	// changed. Looking costs nothing on the link.
	DefaultInterval = 5 * time.Minute
	// DefaultHeartbeat is how often an unchanged document is re-published
	// (one manifest PUT), so the hub can tell "unchanged" from "silent".
	DefaultHeartbeat = 2 * time.Hour
	// attemptTimeout bounds one publish attempt: a stalled link never
	// holds the publisher longer than this.
	attemptTimeout = 30 * time.Second
	// minRetry is the first wait after a failed attempt; it doubles up to
	// the interval.
	minRetry = 30 * time.Second
)

// emptyConfig is the OCI 1.1 empty descriptor's content.
var emptyConfig = []byte("{}")

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// Repository is the site's repository, "host[:port]/path/<site>".
	Repository string
	// Username and Password are the write credential for Repository;
	// both empty means anonymous.
	Username, Password string
	// Insecure talks plain HTTP to the registry.
	Insecure bool
	// StateFile remembers what was last published (crash-safe), so a
	// restart does not re-publish an unchanged document.
	StateFile string
	// Interval is how often Run looks for a change; default DefaultInterval.
	Interval time.Duration
	// Heartbeat is how often an unchanged document is re-published;
	// default DefaultHeartbeat.
	Heartbeat time.Duration
	// Source returns the site's current document. It must be quick and
	// must not wait on the network.
	Source func(ctx context.Context) (Document, error)
	// LastLink, when set, returns the site's last successful upstream
	// contact (zero: unknown); it is published as an annotation.
	LastLink func() time.Time
	// Signer, when set, signs every new document (see DocumentManifest):
	// the signature is written once per document, before the document
	// becomes "latest", and heartbeats leave it valid.
	Signer *trust.Signer
	// Transport is the HTTP transport (tests count bytes with it);
	// default a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// Logger; default discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// PublisherStatus is what the status page and API show of publishing.
type PublisherStatus struct {
	Repository    string     `json:"repository"`
	Heartbeat     string     `json:"heartbeat"`
	LastAttempt   *time.Time `json:"lastAttempt,omitempty"`
	LastPublished *time.Time `json:"lastPublished,omitempty"` // last successful publish (change or heartbeat)
	LastChanged   *time.Time `json:"lastChanged,omitempty"`   // when the published content last changed
	LastError     string     `json:"lastError,omitempty"`
	Digest        string     `json:"digest,omitempty"` // sha256 of the published document
	Publishes     int64      `json:"publishes"`        // successful publishes since start
	Skipped       int64      `json:"skipped"`          // looks that found nothing to publish
	Signed        bool       `json:"signed"`           // documents are signed (fleet.signKey)
}

// Result says what one PublishOnce did.
type Result int

// PublishOnce outcomes.
const (
	Skipped   Result = iota // unchanged and no heartbeat due: no request made
	Changed                 // the document changed: layer and manifest written
	Heartbeat               // unchanged, heartbeat due: manifest written
)

func (r Result) String() string {
	return [...]string{"skipped", "changed", "heartbeat"}[r]
}

// state is the publisher's crash-safe memory (StateFile).
type state struct {
	Repository   string    `json:"repository"`
	Digest       string    `json:"digest"`       // hex sha256 of the document last published
	Key          string    `json:"key"`          // changeKey of it
	PublishedAt  time.Time `json:"publishedAt"`  // last successful manifest PUT
	ChangedAt    time.Time `json:"changedAt"`    // when Digest was first published
	BlobsPresent bool      `json:"blobsPresent"` // the config and Digest's layer are in Repository
	// SignedBy is the signer's key ID (KeyID) whose signature of Digest's
	// document manifest is in Repository; empty when not signed.
	SignedBy string `json:"signedBy,omitempty"`
}

// Publisher publishes a site's status document (see the package doc). Its
// Run loop never blocks anything else: each attempt has its own timeout,
// and failures are kept for Status and retried with backoff.
type Publisher struct {
	o      PublisherOptions
	remote *registryclient.Remote
	log    *slog.Logger

	keyID string // KeyID of o.Signer; empty when unsigned

	run sync.Mutex // one attempt at a time
	mu  sync.Mutex
	st  state
	pub PublisherStatus
}

// NewPublisher checks o and loads the state file (a missing or damaged
// one means "nothing published yet"). It does not touch the network.
func NewPublisher(o PublisherOptions) (*Publisher, error) {
	if o.Source == nil {
		return nil, errors.New("fleet publisher: no Source")
	}
	if o.StateFile == "" {
		return nil, errors.New("fleet publisher: no StateFile")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var auth authn.Authenticator = authn.Anonymous
	if o.Username != "" || o.Password != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: o.Username, Password: o.Password})
	}
	opts := []registryclient.Option{registryclient.WithInsecure(o.Insecure), registryclient.WithAuth(auth),
		registryclient.WithIdleTimeout(attemptTimeout)}
	if o.Transport != nil {
		opts = append(opts, registryclient.WithTransport(o.Transport))
	}
	r, err := registryclient.New(o.Repository, opts...)
	if err != nil {
		return nil, fmt.Errorf("fleet publisher: %w", err)
	}
	p := &Publisher{o: o, remote: r, log: o.Logger}
	if o.Signer != nil {
		if p.keyID, err = KeyID(o.Signer); err != nil {
			return nil, fmt.Errorf("fleet publisher: signing key: %w", err)
		}
	}
	p.pub = PublisherStatus{Repository: o.Repository, Heartbeat: o.Heartbeat.String(), Signed: o.Signer != nil}
	p.loadState()
	return p, nil
}

func (p *Publisher) loadState() {
	b, err := os.ReadFile(p.o.StateFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("fleet: state unreadable; publishing afresh", "file", p.o.StateFile, "err", err)
		}
		return
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.Repository != p.o.Repository {
		if err != nil {
			p.log.Warn("fleet: state damaged; publishing afresh", "file", p.o.StateFile, "err", err)
		}
		return
	}
	p.st = st
	if !st.PublishedAt.IsZero() {
		pt, ct := st.PublishedAt, st.ChangedAt
		p.pub.LastPublished, p.pub.LastChanged, p.pub.Digest = &pt, &ct, "sha256:"+st.Digest
	}
}

// Status returns what the publisher has done so far.
func (p *Publisher) Status() PublisherStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub
}

// Run publishes every Interval (when something changed or a heartbeat is
// due) until ctx is done, retrying a failed attempt after 30 s, doubling up
// to Interval. It returns nil when ctx is done.
//
// The first look waits min(Interval, 30s), so a daemon that just started
// publishes what its first sync pass found rather than its empty start.
func (p *Publisher) Run(ctx context.Context) error {
	wait := min(p.o.Interval, minRetry)
	retry := minRetry
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if _, err := p.PublishOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Warn("fleet: publish failed", "repository", p.o.Repository, "err", err, "retry", retry)
			wait = min(retry, p.o.Interval)
			retry = min(2*retry, p.o.Interval)
			continue
		}
		wait, retry = p.o.Interval, minRetry
	}
}

// PublishOnce publishes when the document changed since the last publish
// or the heartbeat is due, and does nothing (no request) otherwise.
func (p *Publisher) PublishOnce(ctx context.Context) (Result, error) {
	p.run.Lock()
	defer p.run.Unlock()
	now := p.o.Now().UTC()
	res, err := p.publish(ctx, now)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pub.LastAttempt = &now
	if err != nil {
		p.pub.LastError = ClipError(err.Error())
		return res, err
	}
	p.pub.LastError = ""
	if res == Skipped {
		p.pub.Skipped++
		return res, nil
	}
	p.pub.Publishes++
	pt, ct := p.st.PublishedAt, p.st.ChangedAt
	p.pub.LastPublished, p.pub.LastChanged, p.pub.Digest = &pt, &ct, "sha256:"+p.st.Digest
	return res, nil
}

func (p *Publisher) publish(ctx context.Context, now time.Time) (Result, error) {
	doc, err := p.o.Source(ctx)
	if err != nil {
		return Skipped, fmt.Errorf("fleet: status document: %w", err)
	}
	raw, err := Encode(Fit(doc))
	if err != nil {
		return Skipped, err
	}
	digest, key := Hash(raw), changeKey(raw)
	st := p.st
	res := Heartbeat
	switch {
	case key != st.Key:
		res = Changed
		st.Key, st.ChangedAt = key, now
	case now.Sub(st.PublishedAt) < p.o.Heartbeat && st.BlobsPresent && st.SignedBy == p.keyID:
		// (A new signing key, or signing turned on or off, publishes at
		// once: the hub then sees the document signed by the new key.)
		return Skipped, nil
	}
	if digest != st.Digest {
		// Changed, or a heartbeat whose error texts differ only in numbers
		// from what was published: the new text goes out with it.
		st.Digest, st.BlobsPresent, st.SignedBy = digest, false, ""
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	layer := v1.Descriptor{MediaType: ArtifactType, Size: int64(len(raw)), Digest: v1.Hash{Algorithm: "sha256", Hex: digest}}
	if !st.BlobsPresent {
		if err := p.pushBlob(ctx, emptyDescriptor(), emptyConfig); err != nil {
			return res, err
		}
		if err := p.remote.WriteBlob(ctx, layer, bytes.NewReader(raw)); err != nil {
			return res, fmt.Errorf("fleet: publish to %s: %w", p.o.Repository, err)
		}
		st.BlobsPresent = true
	}
	if st.SignedBy != p.keyID {
		if err := p.sign(ctx, layer); err != nil {
			return res, err
		}
		st.SignedBy = p.keyID
	}
	var link time.Time
	if p.o.LastLink != nil {
		link = p.o.LastLink()
	}
	man, err := Manifest(layer, now, st.ChangedAt, link)
	if err != nil {
		return res, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(man))
	md := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: n, Digest: h}
	if err := p.remote.WriteManifest(ctx, md, man, Tag); err != nil {
		// The registry may have lost a blob (garbage collection): upload
		// both again next time.
		p.st.BlobsPresent, p.st.SignedBy = false, ""
		return res, fmt.Errorf("fleet: publish to %s: %w", p.o.Repository, err)
	}
	st.Repository, st.PublishedAt = p.o.Repository, now
	b, _ := json.Marshal(st)
	if err := atomicfile.WriteFile(p.o.StateFile, b, 0o600); err != nil {
		// Published all the same; a restart re-publishes, which is harmless.
		p.log.Warn("fleet: save state", "file", p.o.StateFile, "err", err)
	}
	p.st = st
	p.log.Debug("fleet: published", "repository", p.o.Repository, "what", res.String(), "digest", digest)
	return res, nil
}

// changeKey is what decides "changed": the document's hash with every run
// of digits in its error lines made one '#', so an error that only counts
// differently ("after 3 ms", "attempt 7") does not re-publish every
// interval, and with the estimates of pending revisions coarsened: the ETA
// left out (Percent moves with it) and the forecast times cut to their UTC
// day, so a forecast that creeps with the clock (a revision waiting while
// the link is idle) does not re-publish every quarter hour. The new text
// goes out with the next change or heartbeat.
func changeKey(raw []byte) string {
	var d Document
	if err := json.Unmarshal(raw, &d); err != nil {
		return Hash(raw)
	}
	d.Errors = hideDigits(d.Errors)
	for i := range d.Repos {
		d.Repos[i].Errors = hideDigits(d.Repos[i].Errors)
		for j := range d.Repos[i].Pending {
			p := &d.Repos[i].Pending[j]
			p.ETAMinutes = 0
			p.CompleteBy, p.SizeKnownAt = utcDay(p.CompleteBy), utcDay(p.SizeKnownAt)
		}
	}
	b, _ := json.Marshal(d)
	return Hash(b)
}

// utcDay is the UTC date of an RFC 3339 time, or t itself if it is not one.
func utcDay(t string) string {
	v, err := time.Parse(time.RFC3339, t)
	if err != nil {
		return t
	}
	return v.UTC().Format(time.DateOnly)
}

var digitRun = regexp.MustCompile(`[0-9]+`)

func hideDigits(errs []string) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = digitRun.ReplaceAllString(e, "#")
	}
	return out
}

// sign writes the document manifest of layer (tagged DocumentTag) and its
// signature (cosign's tag sha256-<hex>.sig, with the document manifest as
// OCI subject), or, unsigned, nothing. Both go before the "latest"
// manifest that makes the document visible, so a reader never sees a new
// document before its signature.
func (p *Publisher) sign(ctx context.Context, layer v1.Descriptor) error {
	if p.o.Signer == nil {
		return nil
	}
	dm, err := DocumentManifest(layer)
	if err != nil {
		return err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(dm))
	dd := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: n, Digest: h}
	if err := p.remote.WriteManifest(ctx, dd, dm, DocumentTag); err != nil {
		return fmt.Errorf("fleet: publish to %s: document manifest: %w", p.o.Repository, err)
	}
	sig, err := p.o.Signer.Sign(p.o.Repository, dd)
	if err != nil {
		return fmt.Errorf("fleet: sign the document: %w", err)
	}
	for d, b := range sig.Blobs {
		if err := p.pushBlob(ctx, v1.Descriptor{Digest: d, Size: int64(len(b))}, b); err != nil {
			return err
		}
	}
	if err := p.remote.WriteManifest(ctx, sig.Descriptor, sig.Manifest, sig.Tag); err != nil {
		return fmt.Errorf("fleet: publish to %s: signature: %w", p.o.Repository, err)
	}
	return nil
}

// KeyID names a signing key in the publisher's state: the hex SHA-256 of
// its public key's PEM.
func KeyID(s *trust.Signer) (string, error) {
	pub, err := s.PublicKeyPEM()
	if err != nil {
		return "", err
	}
	return Hash(pub), nil
}

// pushBlob uploads b unless the repository already holds it.
func (p *Publisher) pushBlob(ctx context.Context, d v1.Descriptor, b []byte) error {
	ok, err := p.remote.BlobExists(ctx, d)
	if err != nil {
		return fmt.Errorf("fleet: publish to %s: %w", p.o.Repository, err)
	}
	if ok {
		return nil
	}
	if err := p.remote.WriteBlob(ctx, d, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("fleet: publish to %s: %w", p.o.Repository, err)
	}
	return nil
}

func emptyDescriptor() v1.Descriptor {
	h, n, _ := v1.SHA256(bytes.NewReader(emptyConfig))
	return v1.Descriptor{MediaType: EmptyConfigType, Size: n, Digest: h}
}

// DocumentTag is the tag of the newest signed document manifest (see
// DocumentManifest), so that `cosign verify --key site.pub
// <repository>/<site>:document` finds it. Readers do not use it.
const DocumentTag = "document"

// DocumentManifest is what a signature of a document signs: the OCI
// manifest of the status artifact without annotations (artifactType
// ArtifactType, the empty config, the document as its one layer). It is a
// function of the document alone, fixed bytes for a given layer
// descriptor, so a heartbeat (which writes the annotated "latest"
// manifest again) leaves the signature valid, and a reader recomputes its
// digest from the "latest" manifest's layer and looks for cosign's tag
// sha256-<hex>.sig.
func DocumentManifest(layer v1.Descriptor) ([]byte, error) {
	cfg := emptyDescriptor()
	b, err := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     string(types.OCIManifestSchema1),
		ArtifactType:  ArtifactType,
		Config:        descriptor{MediaType: EmptyConfigType, Digest: cfg.Digest.String(), Size: cfg.Size},
		Layers:        []descriptor{{MediaType: ArtifactType, Digest: layer.Digest.String(), Size: layer.Size}},
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: document manifest: %w", err)
	}
	return b, nil
}

// manifest is the artifact's manifest, fields in a fixed order.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// Manifest returns the artifact manifest for a document layer published at
// published whose content last changed at changed; link, when not zero, is
// the site's last successful upstream contact, to the minute.
func Manifest(layer v1.Descriptor, published, changed, link time.Time) ([]byte, error) {
	cfg := emptyDescriptor()
	m := manifest{
		SchemaVersion: 2,
		MediaType:     string(types.OCIManifestSchema1),
		ArtifactType:  ArtifactType,
		Config:        descriptor{MediaType: EmptyConfigType, Digest: cfg.Digest.String(), Size: cfg.Size},
		Layers:        []descriptor{{MediaType: ArtifactType, Digest: layer.Digest.String(), Size: layer.Size}},
		Annotations: map[string]string{
			AnnotationPublished: published.UTC().Format(time.RFC3339),
			AnnotationChanged:   changed.UTC().Format(time.RFC3339),
		},
	}
	if !link.IsZero() {
		m.Annotations[AnnotationLink] = link.UTC().Truncate(time.Minute).Format(time.RFC3339)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("fleet: manifest: %w", err)
	}
	return b, nil
}
