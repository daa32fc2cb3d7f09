package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/doctor"
	"github.com/ballast-dev/ballast/internal/k3sconfig"
)

// renderConfig renders raw edge config text with default options.
func renderConfig(t testing.TB, raw string) ([]File, error) {
	t.Helper()
	c, err := config.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, raw)
	}
	return Render(c, []byte(raw), Options{Image: "ghcr.io/ballast-dev/ballast:v0.1.0"})
}

// checkFiles is what every valid config's output must satisfy: every .yaml
// decodes strictly into its k8s.io/api type, every name is what its kind
// requires (DNS-1123 label or subdomain, within length), no two objects of
// one kind share a namespace and name, registries.yaml points where the
// daemon is bound, and doctor accepts it.
func checkFiles(t testing.TB, c *config.Config, files []File) (names map[string][]string) {
	t.Helper()
	tt, ok := t.(*testing.T)
	names = map[string][]string{}
	seen := map[string]bool{}
	for _, f := range files {
		if !strings.HasSuffix(f.Path, ".yaml") || strings.HasPrefix(f.Path, "k3s/") {
			continue
		}
		var objs map[string][]any
		if ok {
			objs = decodeStrict(tt, f.Path, f.Content)
		}
		_ = objs
		for _, doc := range splitDocs(f.Content) {
			if strings.TrimSpace(string(doc)) == "" {
				continue
			}
			var m struct {
				Kind     string
				Metadata struct{ Name, Namespace string }
			}
			if err := yaml.Unmarshal(doc, &m); err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			var errs []string
			switch m.Kind {
			case "Namespace", "Service":
				errs = validation.IsDNS1035Label(m.Metadata.Name)
			case "Application", "Job", "Secret":
				// Applications and Jobs: the name is also a label value.
				errs = validation.IsDNS1123Label(m.Metadata.Name)
			default:
				errs = validation.IsDNS1123Subdomain(m.Metadata.Name)
			}
			if len(errs) > 0 {
				t.Errorf("%s: %s name %q: %v", f.Path, m.Kind, m.Metadata.Name, errs)
			}
			if m.Metadata.Namespace != "" {
				if errs := validation.IsDNS1123Label(m.Metadata.Namespace); len(errs) > 0 {
					t.Errorf("%s: %s namespace %q: %v", f.Path, m.Kind, m.Metadata.Namespace, errs)
				}
			}
			key := m.Kind + " " + m.Metadata.Namespace + "/" + m.Metadata.Name
			if seen[key] && m.Kind != "ServiceAccount" && m.Kind != "Namespace" {
				t.Errorf("%s: two objects %s", f.Path, key)
			}
			seen[key] = true
			names[m.Kind] = append(names[m.Kind], m.Metadata.Name)
		}
	}
	// The node side: registries.yaml points at what the daemon bound, and
	// doctor (given the same config) accepts it.
	dir := t.TempDir()
	var reg []byte
	for _, f := range files {
		if f.Path == "k3s/registries.yaml" {
			reg = f.Content
		}
	}
	if reg == nil {
		t.Fatal("no k3s/registries.yaml")
	}
	var doc struct {
		Mirrors map[string]struct{ Endpoint []string } `json:"mirrors"`
	}
	if err := yaml.UnmarshalStrict(reg, &doc); err != nil {
		t.Fatalf("registries.yaml: %v\n%s", err, reg)
	}
	ep, err := k3sconfig.NodeEndpoint(c.Listen.Registry)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Mirrors["*"].Endpoint; len(got) != 1 || got[0] != "http://"+ep {
		t.Errorf("registries.yaml endpoint %v, want http://%s (listen.registry %q)", got, ep, c.Listen.Registry)
	}
	if err := os.WriteFile(filepath.Join(dir, "registries.yaml"), reg, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, r := range doctor.Run(context.Background(), doctor.Options{K3sConfigDir: dir, Registry: ep, EdgeURL: "http://127.0.0.1:1"}) {
		if r.Check == "k3s registries.yaml" && r.Status != doctor.OK {
			t.Errorf("doctor rejects install's registries.yaml: %s %s", r.Status, r.Detail)
		}
	}
	return names
}

func TestInstallNamesAndEndpoints(t *testing.T) {
	long := strings.Repeat("very-long-name-", 6)
	for _, tc := range []struct {
		name      string
		listen    string // listen.registry
		repos     []string
		wantApps  []string // exact names, "" = just valid
		wantEndpt string
	}{
		{"underscore and capitals", ":5000", []string{"https://git.example.internal/Fleet/Edge_Apps.git"}, []string{"edge-apps"}, "127.0.0.1:5000"},
		{"dots and trailing slash", "0.0.0.0:5000", []string{"https://git.example.com/fleet/my.app.v2.git/"}, []string{"my-app-v2"}, "127.0.0.1:5000"},
		{"nothing usable", ":5000", []string{"https://git.example.com/fleet/___.git"}, []string{""}, "127.0.0.1:5000"},
		{"too long", ":5000", []string{"https://git.example.com/fleet/" + long + ".git"}, []string{""}, "127.0.0.1:5000"},
		{"two repos, one name", ":5000", []string{"https://github.com/a/apps.git", "https://github.com/b/apps.git"}, []string{"", ""}, "127.0.0.1:5000"},
		{"two repos, names equal once cleaned", ":5000", []string{"https://github.com/a/Edge_Apps.git", "https://github.com/a/edge-apps.git"}, []string{"", ""}, "127.0.0.1:5000"},
		{"specific loopback address", "127.0.0.2:5000", []string{"https://github.com/fleet/apps.git"}, []string{"apps"}, "127.0.0.2:5000"},
		{"IPv6 loopback", "[::1]:5000", []string{"https://github.com/fleet/apps.git"}, []string{"apps"}, "[::1]:5000"},
		{"IPv6 wildcard", "[::]:5001", []string{"https://github.com/fleet/apps.git"}, []string{"apps"}, "127.0.0.1:5001"},
		{"node address", "10.1.2.3:5000", []string{"https://github.com/fleet/apps.git"}, []string{"apps"}, "10.1.2.3:5000"},
		{"host name", "localhost:5000", []string{"https://github.com/fleet/apps.git"}, []string{"apps"}, "localhost:5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := fmt.Sprintf("dataDir: /srv/ballast\nlisten: {http: \":8080\", registry: %q}\nrepositories:\n", tc.listen)
			for _, r := range tc.repos {
				raw += fmt.Sprintf("  - url: %q\n", r)
			}
			c, err := config.Parse([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			files, err := renderConfig(t, raw)
			if err != nil {
				t.Fatal(err)
			}
			names := checkFiles(t, c, files)
			apps := names["Application"]
			if len(apps) != len(tc.wantApps) {
				t.Fatalf("applications %v, want %d", apps, len(tc.wantApps))
			}
			for i, want := range tc.wantApps {
				if want != "" && apps[i] != want {
					t.Errorf("application %d: %q, want %q", i, apps[i], want)
				}
			}
			// The API token Secrets (one for the daemon, one per app
			// namespace) and the chart credential templates are not
			// repository Secrets.
			repoSecrets := slices.DeleteFunc(slices.Clone(names["Secret"]), func(n string) bool {
				return n == apiTokenSecret || n == HelmRepoCredsName || n == HelmOCICredsName || n == OCISourceCredsName
			})
			if len(repoSecrets) != len(tc.repos) {
				t.Errorf("repository secrets %v", repoSecrets)
			}
			if ep, _ := k3sconfig.NodeEndpoint(tc.listen); ep != tc.wantEndpt {
				t.Errorf("node endpoint %q, want %q", ep, tc.wantEndpt)
			}
		})
	}
}

func TestInstallAppsSharingANamespace(t *testing.T) {
	c, err := config.Parse([]byte(edgeConfig))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(c, []byte(edgeConfig), Options{Image: "ghcr.io/ballast-dev/ballast:v0.1.0", Apps: []App{
		{Name: "shop", Namespace: "prod", RepoURL: "https://github.com/fleet/apps.git"},
		{Name: "infra", Namespace: "prod", RepoURL: "http://git.example.com:3000/ops/infra.git"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	names := checkFiles(t, c, files)
	if jobs := names["Job"]; len(jobs) != 2 || jobs[0] == jobs[1] {
		t.Errorf("hook jobs %v: two apps in one namespace need two Jobs", jobs)
	}
}

func TestInstallRefusesWhatCannotBeInstalled(t *testing.T) {
	for _, tc := range []struct {
		name, listenHTTP, listenReg string
		apps                        []App
		ns                          string
		want                        string
	}{
		{name: "any free port", listenHTTP: ":0", listenReg: ":5000", want: "fixed port"},
		{name: "named port", listenHTTP: ":http", listenReg: ":5000", want: "fixed port"},
		{name: "IPv6 zone", listenHTTP: ":8080", listenReg: "[fe80::1%eth0]:5000", want: "zone"},
		{name: "app name with underscore", listenHTTP: ":8080", listenReg: ":5000", apps: []App{{Name: "Edge_Apps", Namespace: "default", RepoURL: "https://github.com/fleet/apps.git"}}, want: "app \"Edge_Apps\""},
		{name: "app namespace", listenHTTP: ":8080", listenReg: ":5000", apps: []App{{Name: "apps", Namespace: "Prod", RepoURL: "https://github.com/fleet/apps.git"}}, want: "namespace \"Prod\""},
		{name: "namespace", listenHTTP: ":8080", listenReg: ":5000", ns: "bal_last", want: "namespace \"bal_last\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := fmt.Sprintf("dataDir: /srv\nlisten: {http: %q, registry: %q}\nrepositories: [{url: 'https://github.com/fleet/apps.git'}]\n", tc.listenHTTP, tc.listenReg)
			c, err := config.Parse([]byte(raw))
			if err != nil {
				t.Logf("config refuses it already (so does install): %v", err)
				return
			}
			_, err = Render(c, []byte(raw), Options{Image: "ghcr.io/ballast-dev/ballast:v0.1.0", Apps: tc.apps, Namespace: tc.ns})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// FuzzInstall drives config → install with arbitrary repository URLs and
// listen addresses: no panic on any config that config.Parse accepts, and
// every rendered file is valid and consistent (checkFiles).
func FuzzInstall(f *testing.F) {
	f.Add("https://git.example.internal/Fleet/Edge_Apps.git", "https://github.com/b/apps.git", ":8080", "127.0.0.2:5000")
	f.Add("https://github.com/a/apps.git", "https://github.com/b/apps.git", "0.0.0.0:8080", "[::1]:5000")
	f.Add("http://git.example.com:3000/x/y.git", "ssh://git@host/a/---.git", ":1", ":65535")
	f.Fuzz(func(t *testing.T, repo1, repo2, listenHTTP, listenReg string) {
		raw, err := yaml.Marshal(map[string]any{
			"dataDir":      "/srv/ballast",
			"listen":       map[string]string{"http": listenHTTP, "registry": listenReg},
			"repositories": []map[string]string{{"url": repo1}, {"url": repo2}},
		})
		if err != nil {
			return
		}
		c, err := config.Parse(raw)
		if err != nil {
			return // not a valid config
		}
		files, err := Render(c, raw, Options{Image: "ghcr.io/ballast-dev/ballast:v0.1.0"})
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error")
			}
			return
		}
		checkFiles(t, c, files)
	})
}
