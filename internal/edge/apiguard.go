package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
)

// maxAPIBody bounds a state-changing API request body.
const maxAPIBody = 64 << 10

// Request body deadlines (variables for tests).
var (
	// apiBodyTimeout bounds reading a state-changing API request body.
	apiBodyTimeout = 30 * time.Second
	// bodyTimeout bounds reading any other request body on the http
	// listener (handlers that read long bodies set their own deadline).
	bodyTimeout = time.Minute
	// registryBodyIdle is how long a registry request body may stall
	// between two reads: uploads are large, so the deadline moves with
	// each read instead of bounding the whole body.
	registryBodyIdle = time.Minute
)

// apiGuard decides who may change state through the HTTP API. Reads (GET,
// HEAD) are anonymous; every other method on /api/ needs the bearer token,
// an allowed Host, no foreign Origin and a JSON body. Programs (ballast
// verify) call these routes, never web pages: a page from elsewhere cannot
// send the token, cannot send application/json without a CORS preflight
// the daemon never grants, and a page reached through DNS rebinding carries
// a Host this guard refuses.
type apiGuard struct {
	token     apiauth.Token
	tokenFile string
	hosts     map[string]bool // extra allowed host names, lowercased
	log       *slog.Logger
}

func newAPIGuard(cfg *config.Config, log *slog.Logger) (*apiGuard, error) {
	tok, created, err := apiauth.LoadOrCreate(cfg.APITokenFile())
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	if created {
		log.Info("edge: generated the API token for state-changing routes", "file", cfg.APITokenFile())
	}
	g := &apiGuard{token: tok, tokenFile: cfg.APITokenFile(), hosts: map[string]bool{}, log: log}
	for _, h := range cfg.API.AllowedHosts {
		g.hosts[strings.TrimSuffix(strings.ToLower(h), ".")] = true
	}
	return g, nil
}

// safeMethod reports a method that changes nothing.
func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// allow checks a state-changing request and answers it (403, 401, 415)
// when refused. On success it bounds r.Body (size and read deadline).
func (g *apiGuard) allow(w http.ResponseWriter, r *http.Request) bool {
	refuse := func(code int, msg string) bool {
		g.log.Warn("edge: API request refused", "method", r.Method, "path", r.URL.Path, "status", code,
			"remote", r.RemoteAddr, "reason", msg)
		// The body is never read: close the connection after the answer,
		// or net/http would drain the body before answering and a client
		// that stalls would hold the connection until the body deadline.
		w.Header().Set("Connection", "close")
		writeJSON(w, code, map[string]string{"error": msg})
		return false
	}
	if !g.hostAllowed(r.Host) {
		return refuse(http.StatusForbidden, fmt.Sprintf("Host %q is not an address of this daemon: state-changing routes "+
			"take an IP address, localhost, a cluster service name or a name in api.allowedHosts", r.Host))
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		return refuse(http.StatusForbidden, "cross-origin request refused: state-changing routes are not for web pages")
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return refuse(http.StatusForbidden, "cross-site request refused: state-changing routes are not for web pages")
	}
	tok, ok := apiauth.FromRequest(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ballast"`)
		return refuse(http.StatusUnauthorized, "this route changes state and needs the API token: "+
			"send \"Authorization: Bearer <token>\" (ballast verify and ballast sync --now: --api-token-file or $"+apiauth.EnvToken+")")
	}
	if !g.token.Matches(tok) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ballast", error="invalid_token"`)
		return refuse(http.StatusUnauthorized, "wrong API token")
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		return refuse(http.StatusUnsupportedMediaType, "want Content-Type: application/json")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(apiBodyTimeout))
	return true
}

// hostAllowed accepts IP literals, localhost, single-label names, cluster
// service names and the configured extra names. A name an attacker's DNS
// answers for (rebinding) has dots and is none of these.
func (g *apiGuard) hostAllowed(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if i := strings.IndexByte(h, '%'); i >= 0 { // IPv6 zone
		h = h[:i]
	}
	switch {
	case h == "":
		return false
	case net.ParseIP(h) != nil, h == "localhost", g.hosts[h]:
		return true
	case !strings.Contains(h, "."):
		return true
	}
	return strings.HasSuffix(h, ".svc") || strings.HasSuffix(h, ".svc.cluster.local")
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

// errBody is a request body that is not one JSON value.
var errBody = errors.New("bad request body")

// decodeJSON decodes r's body as exactly one JSON value into v: unknown
// fields and any data after the value are errors. A body over the limit
// answers 413, other errors 400 (the caller writes it).
func decodeJSON(r *http.Request, v any) (int, error) {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		var extra json.RawMessage
		switch err2 := dec.Decode(&extra); {
		case err2 == io.EOF:
		case err2 == nil:
			err = errors.New("data after the JSON value")
		default:
			err = err2
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("%w: over %d bytes", errBody, mbe.Limit)
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("%w: %v", errBody, err)
	}
	return 0, nil
}

// bodyDeadline bounds the time a request body may take to arrive: an
// absolute deadline (idle false) from the start of the request, or one that
// moves with every read (idle true, for large uploads). It is lifted once
// the body is read to its end, so a long response is never cut: net/http
// cancels a request whose connection read deadline passes. Requests
// without a body get none: their header was bounded by ReadHeaderTimeout.
func bodyDeadline(h http.Handler, d time.Duration, idle bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(d))
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, d: d, idle: idle}
		h.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	d    time.Duration
	idle bool
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case b.done:
	case err == io.EOF:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case b.idle && n > 0:
		_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	}
	return n, err
}
