// Package edge composes the `ballast edge` daemon: the parts of the edge
// site (internal/site: git mirror, registry, sync) behind one HTTP listener (git smart
// HTTP, status page at /, JSON API, /metrics, /healthz, /readyz, the Helm
// chart repositories of the charts on site under /helm/) plus any extra
// listeners.
// Everything starts together and stops together.
//
// A new part joins in New (or from the caller, before Run) with:
//
//	d.AddService(edge.Service{Name: "sync", Run: s.Run})       // a loop
//	d.AddRoute("/api/v1/sync", h)                            // on the http listener
//	d.AddListener("registry", cfg.Listen.Registry, regHandler) // its own port
//	d.AddReadyCheck("registry", func(ctx context.Context) error { … })
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/syncer"
)

// ShutdownTimeout is how long open requests get to finish at shutdown.
const ShutdownTimeout = 10 * time.Second

// Service is a long-running part of the daemon. Run returns when ctx is
// done (nil) or when the service fails (the whole daemon then stops).
type Service struct {
	Name string
	Run  func(ctx context.Context) error
}

// Daemon is the edge daemon. Build it with New, add parts, then Run once.
type Daemon struct {
	cfg *config.Config
	log *slog.Logger

	// Metrics is the daemon's Prometheus registry (not the global one),
	// served at /metrics. Parts register their collectors here.
	Metrics *prometheus.Registry
	// Mirror is the git mirror; sync and verify-side code use its Go API
	// (HasCommit, RefTips, FirstParents, Subscribe).
	Mirror *gitmirror.Mirror
	// Registry is the edge registry, served on the registry listener.
	Registry *registry.Registry
	// Sync brings bundles aboard; Deployed remembers activated revisions.
	Sync     *syncer.Syncer
	Deployed *syncer.DeployedStore
	site     *site.Site

	verifs verifications
	misses bundleMisses
	disk   diskCache
	gate   *gate
	api    *apiGuard        // nil: every state-changing API request is refused
	fleet  *fleet.Publisher // nil without a fleet section

	services  []Service
	routes    []route
	listeners []listener
	checks    []readyCheck

	started chan struct{}
	mu      sync.Mutex
	addrs   map[string]net.Addr
}

type route struct {
	prefix string
	h      http.Handler
}

type listener struct {
	name, addr string
	h          http.Handler // nil for "http": the daemon's own router
}

type readyCheck struct {
	name string
	f    func(ctx context.Context) error
}

// New builds the daemon for cfg: it opens the edge site (site.Open: the
// mirror, the registry, which creates its storage and credentials, the
// deployed store and the syncer) and joins their services and routes.
// Listeners are bound and loops started by Run.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &Daemon{
		cfg:     cfg,
		log:     log,
		Metrics: reg,
		started: make(chan struct{}),
		addrs:   map[string]net.Addr{},
	}
	// The sync loop takes the data dir's lock for its lifetime and the
	// mirror opens itself in Run: the site is opened as the daemon's.
	st, err := site.Open(context.Background(), cfg, site.Options{Daemon: true, Logger: log, Metrics: reg,
		Notify: func(repoID string) { d.gate.mark(repoID) },
		// A revision the gate holds back for its git dependencies may
		// now be ready.
		DepsFetched: func() { d.gate.markAll() },
		// A revision the gate holds back for its LFS objects may now be
		// ready.
		LFSFetched:  func(id string) { d.gate.lfsFetched(id) },
		SyncOptions: func(o *syncer.Options) { o.Waiting, o.Demanded = d.waitingOn, d.demanded }})
	if err != nil {
		return nil, err
	}
	d.site = st
	m := st.Mirror
	d.Mirror, d.Registry, d.Deployed, d.Sync = st.Mirror, st.Registry, st.Deployed, st.Sync
	d.gate = newGate(cfg, m, log)
	d.AddService(Service{Name: "git-mirror", Run: m.Run})
	d.AddRoute("/git/", st.LFS.Wrap(m.GitHandler()))
	d.AddRoute("/api/v1/repos", m.APIHandler())
	d.AddRoute("/api/v1/gitdeps", m.GitDepsHandler())
	d.addLFS()
	d.AddReadyCheck("git-mirror", func(ctx context.Context) error {
		select {
		case <-m.Started():
			return nil
		default:
			return errors.New("recovering repositories")
		}
	})
	d.listeners = append(d.listeners, listener{name: "http", addr: cfg.Listen.HTTP})
	if err := d.addRegistryAndSync(); err != nil {
		return nil, err
	}
	if err := d.addFleet(); err != nil {
		return nil, err
	}
	if d.gate.enabled() {
		d.gate.sync = d.Sync
		if st.LFS != nil {
			d.gate.lfs = st.LFS
		}
		d.AddService(Service{Name: "gate", Run: d.gate.run})
		// Until the first recompute, gated branches show what was ready
		// before the restart: keep clients away until it is done.
		d.AddReadyCheck("gate", func(context.Context) error {
			select {
			case <-d.gate.ready:
				return nil
			default:
				return errors.New("recomputing gated branches")
			}
		})
	}
	return d, nil
}

// AddService adds a long-running part. Call before Run.
func (d *Daemon) AddService(s Service) { d.services = append(d.services, s) }

// AddRoute serves h on the http listener for paths starting with prefix
// (the longest matching prefix wins). Call before Run.
func (d *Daemon) AddRoute(prefix string, h http.Handler) {
	d.routes = append(d.routes, route{prefix, h})
	sort.SliceStable(d.routes, func(i, j int) bool { return len(d.routes[i].prefix) > len(d.routes[j].prefix) })
}

// AddListener serves h on its own address (e.g. the registry on :5000).
// Call before Run.
func (d *Daemon) AddListener(name, addr string, h http.Handler) {
	d.listeners = append(d.listeners, listener{name: name, addr: addr, h: h})
}

// AddReadyCheck makes /readyz fail while f returns an error. Checks must be
// quick and must not depend on upstreams: offline is normal at the edge.
func (d *Daemon) AddReadyCheck(name string, f func(ctx context.Context) error) {
	d.checks = append(d.checks, readyCheck{name, f})
}

// Started is closed once every listener is bound.
func (d *Daemon) Started() <-chan struct{} { return d.started }

// Addr returns the bound address of the named listener ("http", …), or nil.
func (d *Daemon) Addr(name string) net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addrs[name]
}

// Run binds every listener, then runs services and servers until ctx is
// done or one of them fails. A clean shutdown (ctx done) returns nil.
func (d *Daemon) Run(ctx context.Context) error {
	var servers []*http.Server
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, l := range d.listeners {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen %s on %s: %w", l.name, l.addr, err)
		}
		lns = append(lns, ln)
		srv := &http.Server{
			// Uploads to the registry are large: their bodies may not stall
			// for longer than registryBodyIdle between two reads.
			Handler:           accessLog(d.log, recoverer(d.log, writeDeadline(bodyDeadline(l.h, registryBodyIdle, true), writeIdle))),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		}
		if l.h == nil {
			// No ReadTimeout: net/http cancels a request's context when the
			// read deadline passes, which would kill long clones. Instead
			// every request body must arrive within bodyTimeout, and the
			// deadline is lifted once it has (handlers may shorten it).
			srv.Handler = accessLog(d.log, recoverer(d.log, writeDeadline(bodyDeadline(d.router(), bodyTimeout, false), writeIdle)))
		}
		servers = append(servers, srv)
		d.mu.Lock()
		d.addrs[l.name] = ln.Addr()
		d.mu.Unlock()
		d.log.Info("edge: listening", "listener", l.name, "addr", ln.Addr().String())
	}
	close(d.started)

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range d.services {
		g.Go(func() error {
			if err := s.Run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			return nil
		})
	}
	for i, srv := range servers {
		ln := lns[i]
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", d.listeners[i].name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
		}
		return nil
	})
	err := g.Wait()
	d.log.Info("edge: stopped")
	return err
}

// router dispatches the http listener's paths. The status page is exactly
// "/", so it can never catch a mistyped /git/ path. Not http.ServeMux: that
// answers unclean paths ("..", "//") with redirects, and clients of the
// git mirror (go-git) must never be redirected; such paths get 400.
func (d *Daemon) router() http.Handler {
	metrics := promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if hasDotSegment(p) {
			if strings.HasPrefix(p, HelmPrefix) {
				// Helm clients treat 404 as "no such chart"; 400 reads as
				// a broken repository.
				http.NotFound(w, r)
				return
			}
			http.Error(w, "bad path", http.StatusBadRequest)
			return
		}
		switch p {
		case "/":
			d.servePage(w, r)
			return
		case "/healthz":
			fmt.Fprintln(w, "ok")
			return
		case "/readyz":
			d.serveReady(w, r)
			return
		case "/metrics":
			metrics.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(p, "/api/") && !safeMethod(r.Method) {
			// Every state-changing API route, present and future, needs
			// the credential: see apiGuard.
			if d.api == nil {
				http.Error(w, "state-changing API routes are disabled", http.StatusForbidden)
				return
			}
			if !d.api.allow(w, r) {
				return
			}
		}
		for _, rt := range d.routes {
			if strings.HasPrefix(p, rt.prefix) {
				rt.h.ServeHTTP(w, r)
				return
			}
		}
		http.NotFound(w, r)
	})
}

func (d *Daemon) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var failed []string
	for _, c := range d.checks {
		if err := c.f(ctx); err != nil {
			failed = append(failed, c.name+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		http.Error(w, strings.Join(failed, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// hasDotSegment reports a "." or ".." path segment.
func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// accessLog logs every request at debug level with its outcome.
func accessLog(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		log.Debug("edge: request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"bytes", sw.n, "duration", time.Since(start), "remote", r.RemoteAddr, "agent", r.UserAgent())
	})
}

// statusWriter records the status and size of a response. Unwrap keeps
// http.ResponseController (flushes, deadlines) working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// recoverer turns a handler panic into a 500 and a log line instead of a
// dropped connection with no trace.
func recoverer(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("edge: handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}
