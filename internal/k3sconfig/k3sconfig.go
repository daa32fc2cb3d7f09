// Package k3sconfig writes the node-side registry configuration that points
// k3s/containerd at the edge registry: k3s's registries.yaml, and the
// containerd hosts.toml that k3s derives from it (also usable directly with
// containerd or `ctr --hosts-dir`). `ballast install` writes these files.
//
// Registry names here keep host:port as written: only repository names
// inside the edge registry map ':' to '_' (DESIGN.md).
package k3sconfig

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/imageref"
)

// hostname is a DNS name: labels of letters, digits and inner '-'.
var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// AllRegistries is the mirror key (registries.yaml) and upstream
// (HostsTOML) meaning every registry.
const AllRegistries = "*"

// dockerHubServer is the endpoint containerd itself uses for docker.io.
const dockerHubServer = "https://registry-1.docker.io"

// EndpointURL returns the edge registry's mirror URL, "http://host:port".
// The edge registry speaks plain HTTP; k3s needs the scheme spelt out.
func EndpointURL(registryHostPort string) (string, error) {
	host, port, err := net.SplitHostPort(registryHostPort)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("edge registry %q: want host:port", registryHostPort)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("edge registry %q: bad port", registryHostPort)
	}
	if net.ParseIP(host) == nil && !hostname.MatchString(host) {
		return "", fmt.Errorf("edge registry %q: bad host", registryHostPort)
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// NodeEndpoint returns the host:port at which a process on the edge node
// reaches a listener bound to listen (the edge config's listen.registry):
// a wildcard (":5000", "0.0.0.0:5000", "[::]:5000") is reached on
// 127.0.0.1; a given address or name (127.0.0.2:5000, [::1]:5000,
// localhost:5000) is reached on itself. install writes it into
// registries.yaml and doctor expects it there: one rule for both. Errors:
// not host:port, a port that is not 1–65535, an IPv6 zone.
func NodeEndpoint(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("%q: want host:port: %w", listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: want a port number 1-65535", listen)
	}
	if strings.Contains(host, "%") {
		return "", fmt.Errorf("%q: an IPv6 zone cannot be written into registries.yaml; bind a global or loopback address", listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ep := net.JoinHostPort(host, port)
	if _, err := EndpointURL(ep); err != nil {
		return "", err
	}
	return ep, nil
}

// HostsDir is the directory name under containerd's hosts dir
// (certs.d) that configures upstream: "docker.io", "127.0.0.1:5001", or
// "_default" for AllRegistries.
func HostsDir(upstream string) string {
	if upstream == AllRegistries {
		return "_default"
	}
	if c := imageref.EdgeRegistryComponent(upstream); c == imageref.DockerHub {
		return imageref.DockerHub
	}
	return strings.ToLower(upstream)
}

// HostsTOML returns containerd's hosts.toml for pulling upstream's images
// through the edge registry at registryHostPort: the mirror first (pull and
// resolve only; containerd adds ?ns=<upstream> to each request, which the
// edge registry routes to the upstream's images), then the upstream itself.
// For AllRegistries the upstream line is left out: containerd then falls
// back to the registry named in the image reference.
func HostsTOML(registryHostPort, upstream string) (string, error) {
	ep, err := EndpointURL(registryHostPort)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Written by ballast: pull through the edge registry first.\n")
	if upstream != AllRegistries {
		if upstream == "" || strings.ContainsAny(upstream, "/@ \t\n\"'") {
			return "", fmt.Errorf("upstream registry %q: want host[:port] or %q", upstream, AllRegistries)
		}
		server := "https://" + strings.ToLower(upstream)
		if HostsDir(upstream) == imageref.DockerHub {
			server = dockerHubServer
		}
		fmt.Fprintf(&b, "server = %q\n", server)
	}
	fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", ep)
	return b.String(), nil
}

// registries mirrors the part of k3s's registries.yaml that ballast writes.
type registries struct {
	Mirrors map[string]mirror `json:"mirrors"`
}

type mirror struct {
	Endpoint []string `json:"endpoint"`
}

// RegistriesYAML returns a k3s registries.yaml (/etc/rancher/k3s/) that
// sends pulls from every registry through the edge registry at
// registryHostPort first (one "*" mirror; the ns routing tells the
// registries apart). Pulls fall back to the upstream registry when the edge
// does not have an image.
func RegistriesYAML(registryHostPort string) ([]byte, error) {
	ep, err := EndpointURL(registryHostPort)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(registries{Mirrors: map[string]mirror{AllRegistries: {Endpoint: []string{ep}}}})
	if err != nil {
		return nil, fmt.Errorf("registries.yaml: %w", err)
	}
	return append([]byte("# Written by ballast: pull every image through the edge registry first.\n"), b...), nil
}
