package registry

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Transport returns an http.RoundTripper that serves requests in-process
// through Handler, without a listener, streaming request and response
// bodies. Any URL host works (e.g. "http://edge.invalid/v2/"). Requests
// without an Authorization header get the write credentials, so in-process
// code (sync --once, import, tests) can push. Use it with
// go-containerregistry's remote.WithTransport or an http.Client.
func (r *Registry) Transport() http.RoundTripper {
	return &inProcessTransport{h: r.handler, creds: r.creds}
}

type inProcessTransport struct {
	h     http.Handler
	creds Credentials
}

func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// As an HTTP transport does: a request whose context is already done
	// is not sent (the select below could otherwise pick either case).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in := req.Clone(ctx)
	if in.Header.Get("Authorization") == "" {
		in.SetBasicAuth(t.creds.Username, t.creds.Password)
	}
	if in.Body == nil {
		in.Body = http.NoBody
	}
	in.Host = req.URL.Host
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "in-process"
	if in.Proto == "" {
		in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/1.1", 1, 1
	}

	pr, pw := io.Pipe()
	rw := &pipeResponseWriter{header: http.Header{}, pw: pw, head: req.Method == http.MethodHead, ready: make(chan struct{})}
	go func() {
		defer in.Body.Close()
		defer func() {
			if p := recover(); p != nil {
				rw.fail(fmt.Errorf("registry handler panicked: %v", p))
				return
			}
			rw.finish()
		}()
		t.h.ServeHTTP(rw, in)
	}()

	select {
	case <-rw.ready:
	case <-ctx.Done():
		pr.CloseWithError(ctx.Err())
		return nil, ctx.Err()
	}
	if rw.err != nil {
		return nil, rw.err
	}
	resp := &http.Response{
		Status:        strconv.Itoa(rw.code) + " " + http.StatusText(rw.code),
		StatusCode:    rw.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}
	if n, err := strconv.ParseInt(rw.sent.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = n
	}
	if resp.ContentLength == 0 || req.Method == http.MethodHead {
		resp.Body = http.NoBody
		// Drain what the handler may still write (nothing for HEAD).
		go io.Copy(io.Discard, pr)
	}
	return resp, nil
}

// pipeResponseWriter hands the status and headers over once and streams the
// body through a pipe, so a blob is never buffered whole.
//
// The status and headers are handed over at the first body byte, a Flush or
// the handler's return, never at WriteHeader alone: a listener sends nothing
// either until then, and clients rely on it. Distribution closes an upload
// once more after a PATCH handler has set 202 (it stores the hash state
// again); a response handed over at WriteHeader let the client's next
// request on that upload (the PUT) race that write, and the PUT failed
// (Distribution: "unable to parse offset from upload state path",
// "directory not empty").
type pipeResponseWriter struct {
	header http.Header
	sent   http.Header
	pw     *io.PipeWriter
	head   bool

	wrote bool // WriteHeader called; used by the handler's goroutine only
	once  sync.Once
	ready chan struct{}
	code  int
	err   error // set before ready closes when the handler failed early
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

// WriteHeader records the status and a copy of the headers; later calls and
// later header changes are ignored, as net/http does.
func (w *pipeResponseWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.code = code
	w.sent = w.header.Clone()
}

// release hands the status and headers to RoundTrip.
func (w *pipeResponseWriter) release() {
	w.once.Do(func() { close(w.ready) })
}

func (w *pipeResponseWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if len(b) == 0 {
		return 0, nil
	}
	w.release()
	if w.head {
		return len(b), nil
	}
	return w.pw.Write(b)
}

// Flush hands the status and headers over; every Write reaches the reader
// directly.
func (w *pipeResponseWriter) Flush() {
	w.WriteHeader(http.StatusOK)
	w.release()
}

func (w *pipeResponseWriter) finish() {
	w.WriteHeader(http.StatusOK)
	w.release()
	w.pw.Close()
}

func (w *pipeResponseWriter) fail(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.ready)
	})
	w.pw.CloseWithError(err)
}
