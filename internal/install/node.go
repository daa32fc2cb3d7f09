package install

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/k3sconfig"
)

// DefaultUpstreamRegistries get a containerd hosts.toml each when the
// operator names none; k3s needs no list, its "*" mirror covers every one.
var DefaultUpstreamRegistries = []string{"docker.io", "ghcr.io", "quay.io", "registry.k8s.io"}

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

func (o *Options) nodeFiles(c *config.Config) ([]File, error) {
	reg, err := k3sconfig.RegistriesYAML(o.NodeRegistry)
	if err != nil {
		return nil, err
	}
	files := []File{
		{Path: "k3s/registries.yaml", Content: reg},
		{Path: "k3s/config.yaml", Content: K3sConfigYAML(o.K3sDataDir)},
	}
	regs := map[string]bool{k3sconfig.AllRegistries: true}
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
		h, err := k3sconfig.HostsTOML(o.NodeRegistry, r)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: "containerd/certs.d/" + k3sconfig.HostsDir(r) + "/hosts.toml", Content: []byte(h)})
	}
	return files, nil
}
