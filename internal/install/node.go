package install

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
)

// DefaultUpstreamRegistries get a containerd hosts.toml each when the
// operator names none; k3s needs no list, its "*" mirror covers every one.
var DefaultUpstreamRegistries = []string{"docker.io", "ghcr.io", "quay.io", "registry.k8s.io"}

// RegistriesYAML is k3s's /etc/rancher/k3s/registries.yaml pointing every
// upstream registry at the edge registry on nodeRegistry (host:port).
func RegistriesYAML(nodeRegistry string) ([]byte, error) {
	doc := map[string]any{
		"mirrors": map[string]any{
			"*": map[string]any{"endpoint": []string{"http://" + nodeRegistry}},
		},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	header := "# k3s registry mirrors: every image is pulled from the ballast edge registry.\n" +
		"# Install as /etc/rancher/k3s/registries.yaml and restart k3s.\n"
	return append([]byte(header), b...), nil
}

// K3sConfigYAML is a fragment of /etc/rancher/k3s/config.yaml that keeps
// k3s state on persistent storage and pulls only through the mirror.
func K3sConfigYAML(dataDir string) []byte {
	return []byte(fmt.Sprintf(`# Merge into /etc/rancher/k3s/config.yaml (or a file in config.yaml.d/).
# k3s keeps its state (SQLite via kine at <data-dir>/server/db/state.db)
# under data-dir: it must be on persistent disk, not tmpfs. Back up
# server/db/ on a schedule: a power cut can corrupt SQLite.
data-dir: %s
# Never fall back to the upstream registry: on a disconnected site that is a
# pull that hangs until it times out. ballast verify guarantees the images
# are in the edge registry before a sync starts.
disable-default-registry-endpoint: true
`, dataDir))
}

// HostsTOML is containerd's certs.d/<registry>/hosts.toml sending pulls for
// registry to the edge registry at nodeRegistry (host:port).
func HostsTOML(registry, nodeRegistry string) string {
	return fmt.Sprintf("# containerd mirror for %s through the ballast edge registry.\n"+
		"server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
		registry, upstreamServer(registry), "http://"+nodeRegistry)
}

func upstreamServer(registry string) string {
	if registry == imageref.DockerHub {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

func (o *Options) nodeFiles(c *config.Config) ([]File, error) {
	reg, err := RegistriesYAML(o.NodeRegistry)
	if err != nil {
		return nil, err
	}
	files := []File{
		{Path: "k3s/registries.yaml", Content: reg},
		{Path: "k3s/config.yaml", Content: K3sConfigYAML(o.K3sDataDir)},
	}
	regs := map[string]bool{}
	for _, r := range DefaultUpstreamRegistries {
		regs[r] = true
	}
	for r := range c.UpstreamRegistries {
		regs[r] = true
	}
	var names []string
	for r := range regs {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, r := range names {
		if strings.ContainsAny(r, "/\\") || strings.Contains(r, "..") {
			return nil, fmt.Errorf("upstream registry %q: not a host[:port]", r)
		}
		files = append(files, File{Path: "containerd/certs.d/" + r + "/hosts.toml", Content: []byte(HostsTOML(r, o.NodeRegistry))})
	}
	return files, nil
}
