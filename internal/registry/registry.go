// Package registry is the edge registry: CNCF Distribution embedded with
// filesystem storage under the data dir, behind ballast's own middleware
// (DESIGN.md "Edge registry layout"):
//
//   - anonymous pulls, writes only with the write credentials (HTTP basic);
//   - ns routing, so one "*" mirror entry in k3s serves every upstream
//     registry (see nsroute.go);
//   - a read-only switch used while retention garbage-collects.
//
// There is no blob descriptor cache: a HEAD always asks the file system, so
// verify sees a blob that has gone missing.
package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/ballast-dev/ballast/internal/datadir"
)

// DefaultCatalogMaxEntries is the page size limit of /v2/_catalog unless
// Options.CatalogMaxEntries says otherwise.
const DefaultCatalogMaxEntries = 1000

// Options configure New.
type Options struct {
	// DataDir is ballast's data directory; the registry stores under
	// DataDir/registry. Required.
	DataDir string
	// CredentialsFile holds the write credentials ("user:password"),
	// generated with a random password (mode 0600) if it does not exist
	// (config.Config.CredentialsFile()). Required.
	CredentialsFile string
	// Logger receives the registry's logs, Distribution's included. The
	// default discards them.
	Logger *slog.Logger
	// CatalogMaxEntries caps one /v2/_catalog page. The default is
	// DefaultCatalogMaxEntries.
	CatalogMaxEntries int
}

// Registry is one embedded edge registry. Its Handler serves the OCI
// distribution API; Transport gives in-process code the same API without a
// listener.
type Registry struct {
	app     *handlers.App
	handler http.Handler
	creds   Credentials
	root    string
	log     *slog.Logger
	id      string // routes Distribution's logs of this registry's requests to log
	gate    *writeGate
	link    *linkAnywhere

	gcMu      sync.Mutex // one garbage collection at a time
	closeOnce sync.Once
}

// StorageDir returns where the registry of a data dir keeps its content.
func StorageDir(dataDir string) string { return datadir.Of(dataDir).Registry() }

// New opens (creating if needed) the registry stored under opts.DataDir and
// loads or generates its write credentials. Close releases it.
func New(ctx context.Context, opts Options) (*Registry, error) {
	if opts.DataDir == "" {
		return nil, errors.New("registry: no data dir")
	}
	if opts.CredentialsFile == "" {
		return nil, errors.New("registry: no write credentials file")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "registry")
	maxEntries := opts.CatalogMaxEntries
	if maxEntries <= 0 {
		maxEntries = DefaultCatalogMaxEntries
	}
	root := StorageDir(opts.DataDir)
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("registry storage: %w", err)
	}
	creds, created, err := LoadOrCreateCredentials(opts.CredentialsFile)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated registry write credentials", "file", opts.CredentialsFile, "user", creds.Username)
	} else if fi, err := os.Stat(opts.CredentialsFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("registry write credentials file is readable by others", "file", opts.CredentialsFile, "mode", fi.Mode().Perm().String())
	}
	secret, err := loadOrCreateSecret(filepath.Join(root, "http-secret"))
	if err != nil {
		return nil, err
	}

	id, err := newInstanceID()
	if err != nil {
		return nil, err
	}
	routeLogrus(id, log)
	app, err := newApp(ctx, distributionConfig(root, secret, maxEntries))
	if err != nil {
		return nil, err
	}
	r := &Registry{app: app, creds: creds, root: root, log: log, gate: &writeGate{}, id: id}
	link := &linkAnywhere{next: app, open: func(ctx context.Context) (distribution.Namespace, error) {
		return storage.NewRegistry(ctx, r.newDriver())
	}}
	r.link = link
	r.handler = withInstance(id, authenticate(creds, r.gate.guard(nsRouter{next: link})))
	return r, nil
}

// distributionConfig is the embedded Distribution's configuration. Defaults
// come only from configuration.Parse, so everything that matters is set.
func distributionConfig(root, secret string, maxEntries int) *configuration.Configuration {
	cfg := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": root},
			// Retention deletes manifests and tags.
			"delete": configuration.Parameters{"enabled": true},
			// Blobs are served by the registry itself, never redirected.
			"redirect": configuration.Parameters{"disable": true},
			// No "cache" key: with a blob descriptor cache a HEAD answers
			// "present" from memory after the file is gone.
		},
	}
	cfg.Log.AccessLog.Disabled = true
	cfg.Log.Level = "info"
	cfg.Catalog.MaxEntries = maxEntries
	// A stable secret keeps upload session URLs (their _state is signed
	// with it) valid across restarts, so an interrupted upload resumes.
	cfg.HTTP.Secret = secret
	// No "host": Location headers stay relative to the request, which is
	// what the ns routing rewrites and what works behind any address.
	cfg.HTTP.RelativeURLs = true
	cfg.Validation.Enabled = true
	// The edge keeps only the platforms it was told to (edge config
	// `platforms`), so it accepts image indexes whose other children are
	// absent; bundle indexes also reach children stored in other
	// repositories (their original names). Completeness is judged by sync
	// and verify, for the selected platforms.
	cfg.Validation.Manifests.Indexes.Platforms = "none"
	// Non-distributable (foreign) layers point at http(s) URLs.
	cfg.Validation.Manifests.URLs.Allow = []string{`^https?://`}
	return cfg
}

// newApp turns Distribution's construction panics (it panics on bad
// configuration or storage) into errors.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry: start distribution: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// newInstanceID names one Registry in Distribution's logs ("instance.id").
func newInstanceID() (string, error) {
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("registry instance id: %w", err)
	}
	return fmt.Sprintf("ballast-%x", raw[:]), nil
}

func loadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("registry http secret: %w", err)
	}
	// Missing or short (a crash cannot leave it short, but a hand edit
	// can): make a new one. Pending upload sessions then restart, which
	// loses time, never data.
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("registry http secret: %w", err)
	}
	s := fmt.Sprintf("%x", raw[:])
	if err := writeFileAtomic(path, []byte(s), 0o600); err != nil {
		return "", fmt.Errorf("registry http secret: %w", err)
	}
	return s, nil
}

// Handler serves the OCI distribution API (/v2/…) with ballast's auth, ns
// routing and read-only switch in front of Distribution.
func (r *Registry) Handler() http.Handler { return r.handler }

// Credentials returns the write credentials.
func (r *Registry) Credentials() Credentials { return r.creds }

// StorageDir is the directory Distribution stores content in.
func (r *Registry) StorageDir() string { return r.root }

// Serve serves the registry on ln until ctx is cancelled, then shuts down
// gracefully (in-flight requests get up to 10 s). It returns nil after a
// shutdown caused by ctx.
func (r *Registry) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           r.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("registry: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// Close stops Distribution's background work (upload purging). The Handler
// must not be used afterwards.
func (r *Registry) Close() error {
	var err error
	r.closeOnce.Do(func() {
		err = r.app.Shutdown()
		unrouteLogrus(r.id)
	})
	return err
}

// newDriver opens the filesystem storage driver on the registry's root, for
// work beside the HTTP API (garbage collection).
func (r *Registry) newDriver() *filesystem.Driver {
	return filesystem.New(filesystem.DriverParameters{RootDirectory: r.root, MaxThreads: 100})
}
