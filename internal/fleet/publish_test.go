package fleet_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

// hub is a registry the sites publish to and `ballast fleet` reads.
type hub struct {
	name       string
	host       string
	user, pass string
	keychain   authn.Keychain // for reading
}

// hubs starts both kinds of hub: ballast's embedded registry (anonymous
// reads, basic-auth writes) and Debian's docker-registry (Distribution
// 2.8, htpasswd for reads and writes).
func hubs(t testing.TB) []hub {
	emb := edgeregistry.Start(t, edgeregistry.Options{})
	c := emb.Credentials()
	deb := regserver.Start(t, regserver.Options{Auth: true})
	return []hub{
		{name: "embedded", host: emb.Host, user: c.Username, pass: c.Password, keychain: authn.NewMultiKeychain()},
		{name: "docker-registry", host: deb.Addr, user: deb.User, pass: deb.Password, keychain: staticKeychain{deb.User, deb.Password}},
	}
}

type staticKeychain struct{ user, pass string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
}

// counter counts requests and the bytes both ways on the TCP connections
// (plain HTTP on loopback: what would cross the link, TLS aside).
type counter struct {
	requests, bytes atomic.Int64
}

func (c *counter) transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countConn{Conn: conn, n: &c.bytes}, nil
	}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.requests.Add(1)
		return t.RoundTrip(r)
	})
}

func (c *counter) snapshot() (int64, int64) { return c.requests.Load(), c.bytes.Load() }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func doc(site string, ready ...string) fleet.Document {
	return fleet.Document{Schema: fleet.SchemaVersion, Site: site, Version: "test", Repos: []fleet.Repo{{
		ID: "git.example.com/fleet/apps", Ready: ready, Tracked: []fleet.TrackedRef{{Name: "refs/heads/main", Ready: ready[0]}},
		Deployed: ready[0],
	}}}
}

var (
	rev1 = strings.Repeat("1", 40)
	rev2 = strings.Repeat("2", 40)
)

// TestPublishAndRead publishes from lightweight sites to each real hub and
// reads them back: unchanged documents cost nothing until the heartbeat,
// a heartbeat is one request, a restart remembers what was published, a
// silent site turns UNKNOWN (never ready), and one malformed or missing
// document leaves the rest of the table intact.
func TestPublishAndRead(t *testing.T) {
	for _, h := range hubs(t) {
		t.Run(h.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			current := doc("ship-1", rev1)
			var c counter
			state := filepath.Join(t.TempDir(), "fleet.json")
			newPub := func(site string, src *fleet.Document, stateFile string) *fleet.Publisher {
				p, err := fleet.NewPublisher(fleet.PublisherOptions{
					Repository: h.host + "/fleet/sites/" + site, Username: h.user, Password: h.pass, Insecure: true,
					StateFile: stateFile, Heartbeat: 2 * time.Hour, Now: clock, Transport: c.transport(),
					Source: func(context.Context) (fleet.Document, error) { return *src, nil },
				})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			publish := func(p *fleet.Publisher, want fleet.Result) (requests, bytes int64) {
				t.Helper()
				r0, b0 := c.snapshot()
				got, err := p.PublishOnce(ctx)
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				if got != want {
					t.Fatalf("publish did %v, want %v", got, want)
				}
				r1, b1 := c.snapshot()
				return r1 - r0, b1 - b0
			}

			p := newPub("ship-1", &current, state)
			publish(p, fleet.Changed)
			now = now.Add(5 * time.Minute)
			if r, b := publish(p, fleet.Skipped); r != 0 || b != 0 {
				t.Fatalf("an unchanged document cost %d requests, %d bytes", r, b)
			}
			now = now.Add(2 * time.Hour)
			r, b := publish(p, fleet.Heartbeat)
			if r != 1 {
				t.Errorf("heartbeat: %d requests, want 1 (the manifest)", r)
			}
			t.Logf("heartbeat: %d request, %d bytes on the wire", r, b)
			current = doc("ship-1", rev2, rev1)
			publish(p, fleet.Changed)
			if st := p.Status(); st.Publishes != 3 || st.Skipped != 1 || st.LastError != "" {
				t.Errorf("status %+v", st)
			}
			// A restart (new publisher, same state file) publishes nothing.
			if r, _ := publish(newPub("ship-1", &current, state), fleet.Skipped); r != 0 {
				t.Errorf("restart re-published: %d requests", r)
			}

			other := doc("ship-2", rev1)
			publish(newPub("ship-2", &other, filepath.Join(t.TempDir(), "s")), fleet.Changed)
			pushBroken(t, h, "ship-3", []byte(`{"schema":1,"site":"ship-3","repos":[{"id":"x","ready":["main"]}]}`))
			// A document claiming another site's name, in ship-4's repository.
			pushBroken(t, h, "ship-4", mustEncode(t, doc("ship-1", rev1)))

			read := func(at time.Time) map[string]fleet.SiteView {
				f, err := fleet.Read(ctx, fleet.ReadOptions{Repository: h.host + "/fleet/sites", Insecure: true,
					Keychain: h.keychain, Stale: 6 * time.Hour, Now: func() time.Time { return at }})
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]fleet.SiteView{}
				for _, s := range f.Sites {
					out[s.Site] = s
				}
				if len(out) != 4 {
					t.Fatalf("read %d sites, want 4: %+v", len(out), f.Sites)
				}
				var text bytes.Buffer
				_ = f.WriteText(&text)
				t.Logf("at %s:\n%s", at.Format(time.Kitchen), text.String())
				return out
			}
			sites := read(now.Add(time.Minute))
			s1 := sites["ship-1"]
			if s1.State != fleet.StateCurrent || s1.Document == nil || s1.Document.Repos[0].Ready[0] != rev2 || s1.AgeSeconds != 60 {
				t.Errorf("ship-1: %+v", s1)
			}
			if s := sites["ship-2"]; s.State != fleet.StateCurrent {
				t.Errorf("ship-2: %+v", s)
			}
			if s := sites["ship-3"]; s.State != fleet.StateError || !strings.Contains(s.Error, `repos[0].ready[0]: "main" is not a revision`) {
				t.Errorf("ship-3 (malformed): %+v", s)
			}
			if s := sites["ship-4"]; s.State != fleet.StateError || !strings.Contains(s.Error, `names site "ship-1"`) {
				t.Errorf("ship-4 (wrong site): %+v", s)
			}

			// Seven hours of silence: UNKNOWN, and the last document is not
			// where a reader looks for what is ready.
			sites = read(now.Add(7 * time.Hour))
			if s := sites["ship-1"]; s.State != fleet.StateUnknown || s.Document != nil || s.LastKnown == nil {
				t.Errorf("ship-1 after 7h: %+v", s)
			}
		})
	}
}

func mustEncode(t *testing.T, d fleet.Document) []byte {
	b, err := fleet.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pushBroken writes a status artifact with the given document bytes, as
// a broken or hostile site might.
func pushBroken(t *testing.T, h hub, site string, docBytes []byte) {
	t.Helper()
	repo, _ := name.NewRepository(h.host+"/fleet/sites/"+site, name.Insecure)
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: h.user, Password: h.pass}))
	layer := static.NewLayer(docBytes, fleet.ArtifactType)
	cfg := static.NewLayer([]byte("{}"), fleet.EmptyConfigType)
	for _, l := range []v1.Layer{layer, cfg} {
		if err := remote.WriteLayer(repo, l, auth); err != nil {
			t.Fatal(err)
		}
	}
	dg, _ := layer.Digest()
	now := time.Now()
	raw, err := fleet.Manifest(v1.Descriptor{Digest: dg, Size: int64(len(docBytes))}, now, now, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Tag(fleet.Tag), rawManifest{raw}, auth); err != nil {
		t.Fatal(err)
	}
}

type rawManifest struct{ raw []byte }

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// TestPublisherFailuresAndDamagedState: a link that is down is an error in
// Status (and no state is written), the next attempt after it comes back
// publishes; a damaged state file means "publish afresh", never a crash.
func TestPublisherFailuresAndDamagedState(t *testing.T) {
	reg := edgeregistry.Start(t, edgeregistry.Options{})
	creds := reg.Credentials()
	d := doc("ship-5", rev1)
	state := filepath.Join(t.TempDir(), "fleet.json")
	mk := func(host string) *fleet.Publisher {
		p, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: host + "/fleet/sites/ship-5",
			Username: creds.Username, Password: creds.Password, Insecure: true, StateFile: state,
			Source: func(context.Context) (fleet.Document, error) { return d, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	down := mk("127.0.0.1:1") // nothing listens on port 1
	if _, err := down.PublishOnce(context.Background()); err == nil {
		t.Fatal("publish to a dead registry succeeded")
	}
	if st := down.Status(); st.LastError == "" || st.LastPublished != nil || !strings.Contains(st.LastError, "127.0.0.1:1") {
		t.Errorf("status after a failure: %+v", st)
	}
	if res, err := mk(reg.Host).PublishOnce(context.Background()); err != nil || res != fleet.Changed {
		t.Fatalf("after the link came back: %v, %v", res, err)
	}
	if err := os.WriteFile(state, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := mk(reg.Host)
	if res, err := p.PublishOnce(context.Background()); err != nil || res != fleet.Changed {
		t.Fatalf("with a damaged state file: %v, %v", res, err)
	}
	if res, _ := p.PublishOnce(context.Background()); res != fleet.Skipped {
		t.Fatalf("state not rewritten: %v", res)
	}
}

// TestErrorNumbersDoNotRepublish: an error line that differs only in its
// numbers is not a change (it goes out with the next heartbeat); a new
// error is.
func TestErrorNumbersDoNotRepublish(t *testing.T) {
	reg := edgeregistry.Start(t, edgeregistry.Options{})
	creds := reg.Credentials()
	now := time.Now()
	d := doc("ship-6", rev1)
	d.Repos[0].Errors = []string{"mirror: failed to connect after 3 ms"}
	p, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: reg.Host + "/fleet/sites/ship-6",
		Username: creds.Username, Password: creds.Password, Insecure: true, StateFile: filepath.Join(t.TempDir(), "s"),
		Heartbeat: time.Hour, Now: func() time.Time { return now },
		Source: func(context.Context) (fleet.Document, error) { return d, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, step := range []struct {
		err  string
		wait time.Duration
		want fleet.Result
	}{
		{"mirror: failed to connect after 3 ms", 0, fleet.Changed},
		{"mirror: failed to connect after 12 ms", time.Minute, fleet.Skipped},
		{"mirror: failed to connect after 12 ms", time.Hour, fleet.Heartbeat},
		{"mirror: authentication failed", time.Minute, fleet.Changed},
	} {
		now = now.Add(step.wait)
		d.Repos[0].Errors = []string{step.err}
		if got, err := p.PublishOnce(ctx); err != nil || got != step.want {
			t.Fatalf("%q: %v, %v; want %v", step.err, got, err, step.want)
		}
	}
	f, err := fleet.Read(ctx, fleet.ReadOptions{Repository: reg.Host + "/fleet/sites", Insecure: true, Sites: []string{"ship-6"},
		Now: func() time.Time { return now }})
	if err != nil || f.Sites[0].Document == nil || f.Sites[0].Document.Repos[0].Errors[0] != "mirror: authentication failed" {
		t.Fatalf("read back: %v %+v", err, f)
	}
}

// TestForecastCreepDoesNotRepublish: a pending revision's forecast that
// moves with the clock within a day (a revision waiting while the link is
// idle) is not a change; a forecast that moves to another day, or a new
// state, is.
func TestForecastCreepDoesNotRepublish(t *testing.T) {
	reg := edgeregistry.Start(t, edgeregistry.Options{})
	creds := reg.Credentials()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	d := doc("ship-7", rev1)
	p, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: reg.Host + "/fleet/sites/ship-7",
		Username: creds.Username, Password: creds.Password, Insecure: true, StateFile: filepath.Join(t.TempDir(), "s"),
		Heartbeat: 2 * time.Hour, Now: func() time.Time { return now },
		Source: func(context.Context) (fleet.Document, error) { return d, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, step := range []struct {
		state, completeBy string
		eta               int
		want              fleet.Result
	}{
		{"syncing", "2026-12-01T10:00:00Z", 60, fleet.Changed},
		{"syncing", "2026-12-01T10:15:00Z", 58, fleet.Skipped},
		{"syncing", "2026-12-01T10:30:00Z", 57, fleet.Skipped},
		{"syncing", "2026-12-01T23:45:00Z", 3, fleet.Skipped},
		{"syncing", "2026-12-02T00:00:00Z", 2, fleet.Changed},
		{"waiting", "2026-12-02T00:00:00Z", 0, fleet.Changed},
	} {
		now = now.Add(15 * time.Minute)
		d.Repos[0].Pending = []fleet.Pending{{Revision: rev2, State: step.state, Percent: 40, ETAMinutes: step.eta, CompleteBy: step.completeBy}}
		if got, err := p.PublishOnce(ctx); err != nil || got != step.want {
			t.Fatalf("%s %s: %v, %v; want %v", step.state, step.completeBy, got, err, step.want)
		}
	}
}
