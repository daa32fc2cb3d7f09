// Package registryclient is a small client of the OCI distribution API for
// one repository at a time: resolve tags, fetch and put manifests, stream
// blobs (with HTTP Range from an offset, and an idle timeout), check
// presence with HEAD, upload and mount blobs. It does no retries (the copy
// engine, transfer, retries in one place) and knows no bundle format. A
// *Remote is a transfer.Source and transfer.Target (and Mounter): "implements
// Source" below means transfer's interfaces.
package registryclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/oci"
)

// Remote is one repository in a registry speaking the OCI distribution API.
// It is both a transfer.Source and a transfer.Target (and a Mounter).
// Requests are made directly (no retries here: the engine retries). Absent
// content is an error wrapping oci.ErrNotFound.
type Remote struct {
	repo name.Repository
	o    options

	mu  sync.Mutex
	rts map[string]http.RoundTripper // by scope set
	// sessions are upload sessions a LinkBlob left open (the registry did
	// not hold the blob); WriteBlob of that blob uses them.
	sessions map[v1.Hash]string
}

type options struct {
	idle      time.Duration
	insecure  bool
	keychain  authn.Keychain
	auth      authn.Authenticator
	transport http.RoundTripper
	linkAny   bool
}

// Option configures a Remote.
type Option func(*options) error

// WithInsecure talks plain HTTP to the registry. The default is HTTPS.
func WithInsecure(b bool) Option {
	return func(o *options) error { o.insecure = b; return nil }
}

// WithIdleTimeout aborts a blob download (or its response headers) when
// nothing arrives for d, so a stalled link becomes a retry instead of a
// hang. The default value is 60s.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("idle timeout %v: must be positive", d)
		}
		o.idle = d
		return nil
	}
}

// ErrStalled is returned when a download received nothing for the idle
// timeout. It is retryable.
var ErrStalled = errors.New("download stalled")

// WithKeychain resolves credentials. The default is authn.DefaultKeychain
// (the docker config: ~/.docker/config.json, $DOCKER_CONFIG).
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) error { o.keychain = k; return nil }
}

// WithAuth uses fixed credentials instead of a keychain.
func WithAuth(a authn.Authenticator) Option {
	return func(o *options) error { o.auth = a; return nil }
}

// WithMountAnywhere says the registry links a blob it holds under any
// repository when asked to mount it without naming a source repository
// (POST …/blobs/uploads/?mount=<digest>, no from), as the OCI distribution
// spec allows and ballast's edge registry does. The Remote then implements
// transfer.Linker with that request. The default value is false: elsewhere the
// request would only cost a round trip per blob.
func WithMountAnywhere(b bool) Option {
	return func(o *options) error { o.linkAny = b; return nil }
}

// WithTransport sets the HTTP transport underneath (tests count bytes with
// it). The default is a clone of http.DefaultTransport.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error { o.transport = t; return nil }
}

// New returns the repository ref ("host[:port]/path"). It does not touch
// the network.
func New(ref string, opts ...Option) (*Remote, error) {
	o := options{idle: 60 * time.Second}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(ref, append(nopts, name.StrictValidation)...)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", ref, err)
	}
	if o.transport == nil {
		o.transport = NewTransport()
	}
	if o.keychain == nil {
		o.keychain = authn.DefaultKeychain
	}
	return &Remote{repo: repo, o: o, rts: map[string]http.RoundTripper{}, sessions: map[v1.Hash]string{}}, nil
}

// NewTransport returns the HTTP transport a Remote uses by default, meant
// to be shared by every Remote of a process that talks to the same
// registries: a clone of http.DefaultTransport that keeps up to 64 idle
// connections per host (the default 2 would close most connections of a
// parallel copy after each request, and on a long link every new
// connection costs round trips), with 128 KiB socket buffers (fewer
// syscalls per megabyte of blob) and a 10 s dial timeout (a dial into a
// dead link fails and is retried, rather than hang for 30 s).
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.WriteBufferSize, t.ReadBufferSize = 128<<10, 128<<10
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 64
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// Location implements Located.
func (r *Remote) Location() oci.Location {
	return oci.Location{Registry: r.repo.RegistryStr(), Repository: r.repo.RepositoryStr()}
}

// String is registry/repository.
func (r *Remote) String() string { return r.repo.String() }

// roundTripper authenticates for the scopes; built lazily (it pings the
// registry) and cached, so a link that is down fails an attempt, not New.
func (r *Remote) roundTripper(ctx context.Context, scopes ...string) (http.RoundTripper, error) {
	key := strings.Join(scopes, " ")
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt, ok := r.rts[key]; ok {
		return rt, nil
	}
	auth := r.o.auth
	if auth == nil {
		a, err := r.o.keychain.Resolve(r.repo.Registry)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", r.repo.RegistryStr(), err)
		}
		auth = a
	}
	if auth == authn.Anonymous {
		// No credentials: skip the ping (GET /v2/, a round trip before
		// the first request) and send requests as they are; only a 401
		// asks for the ping and a token.
		rt := &anonFirst{base: r.o.transport, build: func(ctx context.Context) (http.RoundTripper, error) {
			return r.authTransport(ctx, auth, scopes)
		}}
		r.rts[key] = rt
		return rt, nil
	}
	rt, err := r.authTransport(ctx, auth, scopes)
	if err != nil {
		return nil, err
	}
	r.rts[key] = rt
	return rt, nil
}

func (r *Remote) authTransport(ctx context.Context, auth authn.Authenticator, scopes []string) (http.RoundTripper, error) {
	rt, err := transport.NewWithContext(ctx, r.repo.Registry, auth, r.o.transport, scopes)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", r.repo.RegistryStr(), err)
	}
	return rt, nil
}

// anonFirst sends requests without credentials until the registry answers
// 401; from then on it goes through go-containerregistry's transport
// (ping, challenge, token), and the refused request is sent again that
// way. A request whose body cannot be replayed waits for that transport
// first.
type anonFirst struct {
	base  http.RoundTripper
	build func(ctx context.Context) (http.RoundTripper, error)

	mu     sync.Mutex
	authed http.RoundTripper
}

func (a *anonFirst) authTransport(ctx context.Context) (http.RoundTripper, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.authed != nil {
		return a.authed, nil
	}
	rt, err := a.build(ctx)
	if err != nil {
		return nil, err
	}
	a.authed = rt
	return rt, nil
}

// RoundTrip implements http.RoundTripper.
func (a *anonFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	a.mu.Lock()
	authed := a.authed
	a.mu.Unlock()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if authed == nil && !replayable {
		var err error
		if authed, err = a.authTransport(req.Context()); err != nil {
			return nil, err
		}
	}
	if authed != nil {
		return authed.RoundTrip(req)
	}
	resp, err := a.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	resp.Body.Close()
	if authed, err = a.authTransport(req.Context()); err != nil {
		return nil, err
	}
	again := req.Clone(req.Context())
	if req.GetBody != nil {
		if again.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return authed.RoundTrip(again)
}

func (r *Remote) pullScope() string { return r.repo.Scope(transport.PullScope) }
func (r *Remote) pushScope() string {
	return r.repo.Scope(transport.PushScope + "," + transport.PullScope)
}

func (r *Remote) url(kind, ref string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), kind, ref)
}

var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ",")

func (r *Remote) do(ctx context.Context, push bool, req *http.Request, want ...int) (*http.Response, error) {
	scopes := []string{r.pullScope()}
	if push {
		scopes = []string{r.pushScope()}
	}
	rt, err := r.roundTripper(ctx, scopes...)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, nil
		}
	}
	return nil, httpError(req, resp)
}

func httpError(req *http.Request, resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	he := &HTTPError{Method: req.Method, URL: req.URL.Redacted(), Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %w", oci.ErrNotFound, he)
	}
	return he
}

func (r *Remote) head(ctx context.Context, kind, ref string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodHead, r.url(kind, ref), nil)
	if kind == "manifests" {
		req.Header.Set("Accept", manifestAccept)
	}
	ctx, _, done := r.idleContext(ctx)
	defer done()
	resp, err := r.do(ctx, false, req, http.StatusOK)
	if err != nil {
		return nil, stalledOr(ctx, err)
	}
	resp.Body.Close()
	return resp, nil
}

// idleContext returns ctx cancelled with ErrStalled when nothing arrives
// for the idle timeout, a func that restarts the timeout (at each read of
// an answer's body: idleBody), and the func that releases it. Blob
// downloads, manifest reads and HEADs all have it: on a link that stalls
// without a reset, the retry comes after the idle timeout, not after TCP
// gives up minutes later.
func (r *Remote) idleContext(ctx context.Context) (context.Context, func(), func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(r.o.idle, func() { cancel(ErrStalled) })
	return ctx, func() { t.Reset(r.o.idle) }, func() { t.Stop(); cancel(nil) }
}

// stalledOr is err, or ErrStalled wrapping it when ctx was cancelled for
// being idle.
func stalledOr(ctx context.Context, err error) error {
	if err != nil && context.Cause(ctx) == ErrStalled {
		return fmt.Errorf("%w: %w", ErrStalled, err)
	}
	return err
}

// Resolve implements Source: HEAD of a manifest by tag or digest.
func (r *Remote) Resolve(ctx context.Context, ref string) (v1.Descriptor, error) {
	resp, err := r.head(ctx, "manifests", ref)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("resolve %s:%s: %w", r.repo, ref, err)
	}
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil || resp.ContentLength <= 0 {
		// Some registries omit the digest on HEAD: GET and hash.
		return r.resolveByGet(ctx, ref)
	}
	return v1.Descriptor{MediaType: types.MediaType(mediaType(resp.Header.Get("Content-Type"))), Size: resp.ContentLength, Digest: h}, nil
}

func (r *Remote) resolveByGet(ctx context.Context, ref string) (v1.Descriptor, error) {
	raw, mt, err := r.getManifest(ctx, ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(raw))
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}, nil
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}

func (r *Remote) getManifest(ctx context.Context, ref string) ([]byte, types.MediaType, error) {
	raw, mt, _, err := r.getManifestHeader(ctx, ref)
	return raw, mt, err
}

// getManifestHeader is getManifest that also returns the answer's
// Docker-Content-Digest ("" when absent).
func (r *Remote) getManifestHeader(ctx context.Context, ref string) ([]byte, types.MediaType, string, error) {
	req, _ := http.NewRequest(http.MethodGet, r.url("manifests", ref), nil)
	req.Header.Set("Accept", manifestAccept)
	ctx, touch, done := r.idleContext(ctx)
	defer done()
	resp, err := r.do(ctx, false, req, http.StatusOK)
	if err != nil {
		return nil, "", "", fmt.Errorf("manifest %s@%s: %w", r.repo, ref, stalledOr(ctx, err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(&idleBody{ReadCloser: resp.Body, ctx: ctx, touch: touch, release: done}, oci.MaxManifestSize+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("manifest %s@%s: %w", r.repo, ref, stalledOr(ctx, err))
	}
	if len(raw) > oci.MaxManifestSize {
		return nil, "", "", oci.Permanent(fmt.Errorf("manifest %s@%s: larger than %d bytes", r.repo, ref, oci.MaxManifestSize))
	}
	return raw, types.MediaType(mediaType(resp.Header.Get("Content-Type"))), resp.Header.Get("Docker-Content-Digest"), nil
}

// FetchRef implements transfer.RefFetcher: one GET of the manifest a tag or
// digest names, where Resolve and FetchManifest take two round trips. The
// descriptor is computed from the bytes (sha256, their length, the answer's
// Content-Type or else the manifest's mediaType). Bytes that do not hash
// to the digest asked for, or to the answer's Docker-Content-Digest, are an
// error wrapping oci.ErrDigestMismatch.
func (r *Remote) FetchRef(ctx context.Context, ref string) (v1.Descriptor, []byte, error) {
	raw, mt, header, err := r.getManifestHeader(ctx, ref)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(raw))
	for _, want := range []string{ref, header} {
		if strings.HasPrefix(want, "sha256:") && want != h.String() {
			return v1.Descriptor{}, nil, fmt.Errorf("manifest %s@%s: %w: the bytes hash to %s, the registry says %s", r.repo, ref, oci.ErrDigestMismatch, h, want)
		}
	}
	if !oci.IsIndex(mt) && !oci.IsManifest(mt) {
		var probe struct {
			MediaType types.MediaType `json:"mediaType"`
		}
		if json.Unmarshal(raw, &probe) == nil && probe.MediaType != "" {
			mt = probe.MediaType
		}
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}, raw, nil
}

// FetchManifest implements Source.
func (r *Remote) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	raw, _, err := r.getManifest(ctx, d.Digest.String())
	return raw, err
}

// OpenBlob implements Source. Past offset 0 it asks for the closed range
// "bytes=offset-(size-1)" (some registries refuse an open-ended one) and
// accepts these answers:
//
//   - 206 whose Content-Range starts at or before offset, ends at or after
//     it and gives the blob's size as total: the overlap is skipped;
//   - 200 with the whole blob: the first offset bytes are skipped.
//
// Anything else from a resume (416, a 206 starting after offset, a missing
// or malformed Content-Range, a wrong total, a 200 whose Content-Length is
// not the blob's size, an answer that ends cleanly before offset) is an
// error wrapping oci.ErrNoRange: the caller starts the blob again from byte
// 0, so no answer can wedge a blob.
func (r *Remote) OpenBlob(ctx context.Context, d v1.Descriptor, offset int64) (rc io.ReadCloser, err error) {
	if offset < 0 || offset > d.Size || (offset == d.Size && d.Size > 0) {
		return nil, fmt.Errorf("blob %s: offset %d of %d bytes: %w", d.Digest, offset, d.Size, oci.ErrNoRange)
	}
	req, _ := http.NewRequest(http.MethodGet, r.url("blobs", d.Digest.String()), nil)
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-"+strconv.FormatInt(d.Size-1, 10))
	}
	ctx, touch, release := r.idleContext(ctx)
	defer func() {
		if err != nil {
			release()
		}
	}()
	resp, err := r.do(ctx, false, req, http.StatusOK, http.StatusPartialContent)
	if err != nil {
		if context.Cause(ctx) == ErrStalled {
			err = ErrStalled
		}
		var he *HTTPError
		if offset > 0 && errors.As(err, &he) && he.Status == http.StatusRequestedRangeNotSatisfiable {
			err = fmt.Errorf("%w: %w", oci.ErrNoRange, err)
		}
		return nil, fmt.Errorf("blob %s@%s: %w", r.repo, d.Digest, err)
	}
	resp.Body = &idleBody{ReadCloser: resp.Body, ctx: ctx, touch: touch, release: release}
	if offset > 0 && resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		// A 200 is the whole representation: of another size, it is not
		// the blob (an error page, a truncated entity). Refuse the resume
		// so the blob starts over, rather than fail the same way forever.
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s: resume at %d: %w: answered 200 with %d bytes, not the blob's %d", d.Digest, offset, oci.ErrNoRange, resp.ContentLength, d.Size)
	}
	skip := offset
	if resp.StatusCode == http.StatusPartialContent {
		cr := resp.Header.Get("Content-Range")
		start, end, total, perr := ParseContentRange(cr)
		switch {
		case perr != nil:
			err = perr
		case total != d.Size:
			err = fmt.Errorf("range %q: total is not the blob's %d bytes", cr, d.Size)
		case start > offset || end < offset:
			err = fmt.Errorf("range %q does not hold byte %d", cr, offset)
		}
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("blob %s: resume at %d: %w: %w", d.Digest, offset, oci.ErrNoRange, err)
		}
		skip = offset - start
		resp.Body = &limitedBody{r: io.LimitReader(resp.Body, end-start+1), c: resp.Body}
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, resp.Body, skip); err != nil {
			resp.Body.Close()
			if err == io.EOF {
				// The answer ended cleanly before the offset (a cut is
				// io.ErrUnexpectedEOF): it does not hold the bytes to
				// resume from, and would not next time either.
				err = fmt.Errorf("%w: the answer ended before byte %d", oci.ErrNoRange, offset)
			}
			return nil, fmt.Errorf("blob %s: skipping %d bytes to %d: %w", d.Digest, skip, offset, err)
		}
	}
	return resp.Body, nil
}

// ParseContentRange parses a 206 answer's "bytes first-last/total" (RFC
// 9110 §14.4). An unknown total ("*"), first > last, last >= total, or any
// other shape is an error.
func ParseContentRange(s string) (first, last, total int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return bad()
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	f, l, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	num := func(x string) (int64, bool) {
		if x == "" || len(x) > 18 || strings.TrimLeft(x, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	var ok1, ok2, ok3 bool
	first, ok1 = num(f)
	last, ok2 = num(l)
	total, ok3 = num(tot)
	if !ok1 || !ok2 || !ok3 || first > last || last >= total {
		return bad()
	}
	return first, last, total, nil
}

// limitedBody reads at most the bytes a 206 announced.
type limitedBody struct {
	r io.Reader
	c io.Closer
}

func (b *limitedBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *limitedBody) Close() error               { return b.c.Close() }

// idleBody restarts its idle timer (idleContext) on every read; a read
// the timer cut fails with ErrStalled. Close releases the timer.
type idleBody struct {
	io.ReadCloser
	ctx     context.Context
	touch   func()
	release func()
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.touch()
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = stalledOr(b.ctx, err)
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// BlobExists implements Target.
func (r *Remote) BlobExists(ctx context.Context, d v1.Descriptor) (bool, error) {
	return r.exists(ctx, "blobs", d)
}

// ManifestExists implements Target.
func (r *Remote) ManifestExists(ctx context.Context, d v1.Descriptor) (bool, error) {
	return r.exists(ctx, "manifests", d)
}

func (r *Remote) exists(ctx context.Context, kind string, d v1.Descriptor) (bool, error) {
	resp, err := r.head(ctx, kind, d.Digest.String())
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		return false, nil
	}
	return true, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, oci.ErrNotFound)
}

// ResolveTag implements Target.
func (r *Remote) ResolveTag(ctx context.Context, tag string) (v1.Descriptor, error) {
	return r.Resolve(ctx, tag)
}

// startUpload opens an upload session, or mounts when from is set.
func (r *Remote) startUpload(ctx context.Context, d v1.Descriptor, from string) (loc string, mounted bool, err error) {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr())
	scopes := []string{r.pushScope()}
	if from != "" {
		u += "?" + url.Values{"mount": {d.Digest.String()}, "from": {from}}.Encode()
		scopes = append(scopes, r.repo.Registry.Repo(from).Scope(transport.PullScope))
	}
	rt, err := r.roundTripper(ctx, scopes...)
	if err != nil {
		return "", false, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return "", false, err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		resp.Body.Close()
		return "", true, nil
	case http.StatusAccepted:
		resp.Body.Close()
		l, err := resp.Location()
		if err != nil {
			return "", false, fmt.Errorf("upload %s: no Location: %w", r.repo, err)
		}
		return l.String(), false, nil
	default:
		return "", false, httpError(req, resp)
	}
}

// MountBlob implements Mounter.
func (r *Remote) MountBlob(ctx context.Context, d v1.Descriptor, from string) (bool, error) {
	_, mounted, err := r.startUpload(ctx, d, from)
	return mounted, err
}

// LinkBlob implements transfer.Linker when the Remote was made WithMountAnywhere;
// otherwise it reports false without a request. An upload session the
// registry opened instead of mounting is kept for WriteBlob of that blob.
func (r *Remote) LinkBlob(ctx context.Context, d v1.Descriptor) (bool, error) {
	if !r.o.linkAny {
		return false, nil
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/?%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(),
		url.Values{"mount": {d.Digest.String()}}.Encode())
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	resp, err := r.do(ctx, true, req, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return false, fmt.Errorf("link blob %s into %s: %w", d.Digest, r.repo, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return true, nil
	}
	// Not held: the registry opened an upload session instead, which the
	// blob's upload (WriteBlob, next) uses rather than leave it dangling.
	if loc, err := resp.Location(); err == nil {
		r.mu.Lock()
		r.sessions[d.Digest] = loc.String()
		r.mu.Unlock()
	}
	return false, nil
}

// session returns (and forgets) an upload session LinkBlob left for d.
func (r *Remote) session(d v1.Hash) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	loc := r.sessions[d]
	delete(r.sessions, d)
	return loc
}

// WriteBlob implements Target with a monolithic upload: POST a session,
// then PUT the body with its digest; the registry checks the digest too.
func (r *Remote) WriteBlob(ctx context.Context, d v1.Descriptor, body io.Reader) error {
	loc := r.session(d.Digest)
	if loc == "" {
		var err error
		if loc, _, err = r.startUpload(ctx, d, ""); err != nil {
			return fmt.Errorf("upload blob %s to %s: %w", d.Digest, r.repo, err)
		}
	}
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("upload blob %s: bad Location %q: %w", d.Digest, loc, err)
	}
	q := u.Query()
	q.Set("digest", d.Digest.String())
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), io.NopCloser(body))
	req.ContentLength = d.Size
	if d.Size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.do(ctx, true, req, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("upload blob %s to %s: %w", d.Digest, r.repo, err)
	}
	resp.Body.Close()
	return nil
}

// WriteManifest implements Target.
func (r *Remote) WriteManifest(ctx context.Context, d v1.Descriptor, raw []byte, tag string) error {
	ref := tag
	if ref == "" {
		ref = d.Digest.String()
	}
	req, _ := http.NewRequest(http.MethodPut, r.url("manifests", ref), bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(d.MediaType))
	resp, err := r.do(ctx, true, req, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("put manifest %s:%s: %w", r.repo, ref, err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.Digest.String() {
		return oci.Permanent(fmt.Errorf("put manifest %s:%s: registry stored it as %s, want %s", r.repo, ref, got, d.Digest))
	}
	return nil
}

// HTTPError is a registry answer that was not what the protocol expects.
type HTTPError struct {
	Method string
	URL    string
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.URL, e.Status)
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}
