package edge

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/slots"
)

// Response bounds (variables for tests).
var (
	// writeIdle is how long one response write may block: a client that
	// stops reading is cut after it, on every route. A slow but moving
	// client is never cut: the deadline moves with each write.
	writeIdle = time.Minute
	// maxBlobReads bounds the registry's blob downloads served at once:
	// Distribution reads each blob through its own 4 MiB buffer, so 500
	// clients that asked for a blob and never read held 2 GB.
	maxBlobReads = 32
	// maxChartReads bounds the chart archives the Helm repository serves
	// at once (each is read through the same 4 MiB buffer).
	maxChartReads = 8
	// blobSlotWait is how long a blob download waits for a slot before it
	// is answered 503 with Retry-After (pullers retry).
	blobSlotWait = 30 * time.Second
)

// writeDeadline bounds each write of h's responses by d. The deadline is
// cleared when a request starts (no deadline of an earlier request on a
// keep-alive connection applies) and set before each write, header and
// flush, so it bounds a stalled reader, never a long response.
func writeDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, d: d}, r)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

func (w *deadlineWriter) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	w.arm()
	_ = w.rc.Flush()
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isBlobRead reports a registry blob download (GET …/blobs/<digest>).
func isBlobRead(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && !strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// isChartRead reports a chart archive download from the edge's Helm
// repository, which reads the blob through the registry in process.
func isChartRead(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".tgz")
}

// limitReads lets at most n requests that match into h at once; others
// wait up to blobSlotWait, then get 503 with Retry-After. Other requests
// pass.
func limitReads(h http.Handler, n int, match func(*http.Request) bool) http.Handler {
	sl := slots.New(n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !match(r) {
			h.ServeHTTP(w, r)
			return
		}
		release, err := sl.Acquire(r.Context(), blobSlotWait)
		if errors.Is(err, slots.ErrBusy) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "10")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"too many downloads at once: retry later"}]}` + "\n"))
			return
		}
		if err != nil {
			return // the client left
		}
		defer release()
		h.ServeHTTP(w, r)
	})
}
