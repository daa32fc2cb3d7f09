package gitmirror

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// GitHandler serves the mirrored repositories read-only over smart HTTP:
//
//	GET  /git/<host>/<path>.git/info/refs?service=git-upload-pack
//	POST /git/<host>/<path>.git/git-upload-pack
//
// by running `git upload-pack --stateless-rpc`, with protocol v0/v1 and v2
// (the Git-Protocol header becomes GIT_PROTOCOL), gzip request bodies,
// shallow and partial clones, and fetches by SHA. Pushes get 403. It never
// redirects: Argo CD's go-git client does not follow redirects.
func (m *Mirror) GitHandler() http.Handler { return http.HandlerFunc(m.serveGit) }

// bodyReadTimeout bounds reading one upload-pack request body (a variable
// for tests).
var bodyReadTimeout = time.Minute

// gitProtocolHeader is what we pass on as GIT_PROTOCOL: colon-separated
// key=value pairs, e.g. "version=2".
var gitProtocolHeader = regexp.MustCompile(`^[A-Za-z0-9._=:-]{1,256}$`)

func (m *Mirror) serveGit(w http.ResponseWriter, req *http.Request) {
	id, svc, err := parseGitPath(req.URL.Path)
	switch {
	case errors.Is(err, errBadRepo):
		httpError(w, http.StatusBadRequest, "bad repository path")
		return
	case err != nil:
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	if svc == svcReceivePack || req.URL.Query().Get("service") == "git-receive-pack" {
		httpError(w, http.StatusForbidden, "this mirror is read-only: push to the upstream")
		return
	}
	switch svc {
	case svcInfoRefs:
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpError(w, http.StatusMethodNotAllowed, "info/refs takes GET")
			return
		}
		if req.URL.Query().Get("service") != "git-upload-pack" {
			httpError(w, http.StatusBadRequest, "only smart HTTP is served: add ?service=git-upload-pack")
			return
		}
	case svcUploadPack:
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			httpError(w, http.StatusMethodNotAllowed, "git-upload-pack takes POST")
			return
		}
		if ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); ct != "application/x-git-upload-pack-request" {
			httpError(w, http.StatusUnsupportedMediaType, "want Content-Type application/x-git-upload-pack-request")
			return
		}
	}
	r, err := m.lookup(id)
	if err != nil {
		httpError(w, http.StatusNotFound, "repository not mirrored here: only configured repositories are served")
		return
	}
	// Read the request before anything else so an oversized or corrupt body
	// is refused without starting git, and before taking a serving slot so
	// a client trickling its request holds no slot. Bodies of real fetches
	// are KiB and stay in memory; larger ones spill to disk, so stalled
	// clients cost memory in KiB each, whatever they send.
	var body io.Reader
	if svc == svcUploadPack {
		// A client trickling its request must not hold a connection for
		// ever; the deadline is lifted again for the (long) response.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
		b, status, err := m.readBody(req)
		if err != nil {
			// The body was not read to its end: close the connection
			// after the answer. Otherwise net/http drains the rest before
			// it writes the answer, and a client that stalls (with the
			// deadline lifted) would hold the connection for ever.
			w.Header().Set("Connection", "close")
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "10")
			}
			httpError(w, status, err.Error())
			return
		}
		_ = rc.SetReadDeadline(time.Time{})
		defer b.Close()
		body = b
	}
	if err := m.waitReady(req.Context(), r); err != nil {
		w.Header().Set("Retry-After", "30")
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), m.opts.RequestTimeout)
	defer cancel()
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	case <-ctx.Done():
		w.Header().Set("Retry-After", "10")
		httpError(w, http.StatusServiceUnavailable, "mirror busy")
		return
	}
	m.metrics.inFlight.Inc()
	defer m.metrics.inFlight.Dec()

	var env []string
	proto := req.Header.Get("Git-Protocol")
	if gitProtocolHeader.MatchString(proto) {
		env = append(env, "GIT_PROTOCOL="+proto)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
	h.Set("Expires", "Fri, 01 Jan 1980 00:00:00 GMT")
	h.Set("Pragma", "no-cache")
	out := &lazyWriter{w: w, rc: http.NewResponseController(w)}
	args := []string{"upload-pack", "--stateless-rpc"}
	var stdin io.Reader
	if svc == svcInfoRefs {
		h.Set("Content-Type", "application/x-git-upload-pack-advertisement")
		args = append(args, "--advertise-refs")
		if !strings.Contains(proto, "version=2") {
			// v0/v1 advertisements start with the service line that
			// http-backend writes; v2 clients must not get it.
			out.prefix = append(pktLine("# service=git-upload-pack\n"), "0000"...)
		}
	} else {
		h.Set("Content-Type", "application/x-git-upload-pack-result")
		stdin = body
	}
	if req.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	args = append(args, r.dir)
	start := time.Now()
	_, err = gitCmd{args: args, env: env, stdin: stdin, stdout: out}.run(ctx)
	m.metrics.served(r.id, out.n)
	if err != nil {
		var ge *gitError
		switch {
		case out.wrote:
		case errors.As(err, &ge) && strings.Contains(ge.msg, "protocol error"):
			httpError(w, http.StatusBadRequest, "malformed git protocol request")
		default:
			httpError(w, http.StatusInternalServerError, "git upload-pack failed")
		}
		m.log.Warn("git mirror: upload-pack failed", "repo", r.id, "bytes", out.n, "err", err)
		return
	}
	if !out.wrote {
		out.flushPrefix()
	}
	m.log.Debug("git mirror: served", "repo", r.id, "service", args[0], "bytes", out.n, "duration", time.Since(start))
}

// memBodyLimit is the largest upload-pack request body held in memory;
// larger ones are spooled to an unlinked file under the mirror's root.
const memBodyLimit = 64 << 10

// requestBody is a read upload-pack request: in memory, or an unlinked
// spool file that Close releases with its slot.
type requestBody struct {
	io.Reader
	f       *os.File
	release func()
}

func (b *requestBody) Close() error {
	if b.f == nil {
		return nil
	}
	err := b.f.Close()
	b.release()
	return err
}

// readBody reads an upload-pack request body, gunzipping it if needed, up
// to MaxRequestBody bytes after decompression: the first memBodyLimit bytes
// in memory, the rest (rare: a long negotiation) into a spool file. At most
// MaxReadingRequests bodies are received at once, MaxSpooledRequests of them
// spooled (503 beyond).
func (m *Mirror) readBody(req *http.Request) (*requestBody, int, error) {
	limit := m.opts.MaxRequestBody
	if req.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit)
	}
	select {
	case m.readers <- struct{}{}:
		defer func() { <-m.readers }()
	default:
		return nil, http.StatusServiceUnavailable, errors.New("mirror busy: too many requests being received")
	}
	var src io.Reader = http.MaxBytesReader(nil, req.Body, limit+1)
	switch enc := req.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("gzip request body: %w", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q not supported", trim(enc))
	}
	src = io.LimitReader(src, limit+1)
	readErr := func(err error) (*requestBody, int, error) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	var head bytes.Buffer
	n, err := head.ReadFrom(io.LimitReader(src, min(memBodyLimit, limit)+1))
	if err != nil {
		return readErr(err)
	}
	if n <= memBodyLimit && n <= limit {
		return &requestBody{Reader: bytes.NewReader(head.Bytes())}, 0, nil
	}
	if n > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit)
	}
	select {
	case m.spools <- struct{}{}:
	default:
		return nil, http.StatusServiceUnavailable, errors.New("mirror busy: too many large requests being received")
	}
	release := func() { <-m.spools }
	f, err := m.spoolFile()
	if err != nil {
		release()
		m.log.Warn("git mirror: cannot spool a request body", "err", err)
		return nil, http.StatusInternalServerError, errors.New("cannot store the request body")
	}
	fail := func(code int, err error) (*requestBody, int, error) {
		f.Close()
		release()
		return nil, code, err
	}
	if _, err := head.WriteTo(f); err != nil {
		return fail(http.StatusInternalServerError, errors.New("cannot store the request body"))
	}
	total, err := io.Copy(f, src)
	total += n
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || total > limit:
		return fail(http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit))
	case err != nil:
		_, code, rerr := readErr(err)
		return fail(code, rerr)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(http.StatusInternalServerError, errors.New("cannot store the request body"))
	}
	return &requestBody{Reader: f, f: f, release: release}, 0, nil
}

// spoolFile creates an unlinked temp file under the mirror's root: nothing
// is left behind by a crash.
func (m *Mirror) spoolFile() (*os.File, error) {
	dir := filepath.Join(m.root, ".tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "body-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// pktLine frames s as a git pkt-line: four hex digits of total length, then s.
func pktLine(s string) []byte {
	return fmt.Appendf(nil, "%04x%s", len(s)+4, s)
}

// lazyWriter sends the response header with the first byte of output, so
// a git that fails before writing anything can still get a 500. It flushes
// every write: clients see progress and keep-alives as git produces them.
type lazyWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	prefix []byte
	wrote  bool
	n      int64
}

func (l *lazyWriter) flushPrefix() {
	l.wrote = true
	if len(l.prefix) > 0 {
		n, _ := l.w.Write(l.prefix)
		l.n += int64(n)
	}
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.wrote {
		l.flushPrefix()
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	if err == nil {
		_ = l.rc.Flush()
	}
	return n, err
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
