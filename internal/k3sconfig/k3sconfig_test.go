package k3sconfig

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestHostsTOML(t *testing.T) {
	tests := []struct {
		registry, upstream string
		want               string
		wantErr            bool
	}{
		{"127.0.0.1:5000", "docker.io", "# Written by ballast: pull through the edge registry first.\n" +
			"server = \"https://registry-1.docker.io\"\n\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n", false},
		{"edge.local:5000", "ghcr.io", "# Written by ballast: pull through the edge registry first.\n" +
			"server = \"https://ghcr.io\"\n\n[host.\"http://edge.local:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n", false},
		{"10.0.0.5:5000", "127.0.0.1:5001", "# Written by ballast: pull through the edge registry first.\n" +
			"server = \"https://127.0.0.1:5001\"\n\n[host.\"http://10.0.0.5:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n", false},
		{"[::1]:5000", "*", "# Written by ballast: pull through the edge registry first.\n" +
			"\n[host.\"http://[::1]:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n", false},
		{"127.0.0.1:5000", "index.docker.io", "", false},
		{"127.0.0.1", "docker.io", "", true},
		{"127.0.0.1:0", "docker.io", "", true},
		{"127.0.0.1:99999", "docker.io", "", true},
		{"bad host:5000", "docker.io", "", true},
		{"a\"b:5000", "docker.io", "", true},
		{"127.0.0.1:5000", "", "", true},
		{"127.0.0.1:5000", "ghcr.io/org", "", true},
		{"127.0.0.1:5000", "a\"]\nx", "", true},
	}
	for _, tc := range tests {
		got, err := HostsTOML(tc.registry, tc.upstream)
		if (err != nil) != tc.wantErr {
			t.Errorf("HostsTOML(%q, %q) error %v, want error %v", tc.registry, tc.upstream, err, tc.wantErr)
			continue
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("HostsTOML(%q, %q) =\n%s\nwant\n%s", tc.registry, tc.upstream, got, tc.want)
		}
		if tc.upstream == "index.docker.io" && !strings.Contains(got, dockerHubServer) {
			t.Errorf("index.docker.io does not use %s:\n%s", dockerHubServer, got)
		}
	}
}

func TestHostsDir(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io": "docker.io", "index.docker.io": "docker.io", "ghcr.io": "ghcr.io",
		"127.0.0.1:5001": "127.0.0.1:5001", "*": "_default", "Reg.Example.com": "reg.example.com",
	} {
		if got := HostsDir(in); got != want {
			t.Errorf("HostsDir(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistriesYAML(t *testing.T) {
	b, err := RegistriesYAML("192.168.1.10:5000")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Mirrors map[string]struct {
			Endpoint []string `json:"endpoint"`
		} `json:"mirrors"`
	}
	if err := yaml.UnmarshalStrict(b, &got); err != nil {
		t.Fatalf("not valid YAML: %v\n%s", err, b)
	}
	if len(got.Mirrors) != 1 || len(got.Mirrors["*"].Endpoint) != 1 || got.Mirrors["*"].Endpoint[0] != "http://192.168.1.10:5000" {
		t.Fatalf("registries.yaml:\n%s", b)
	}
	if _, err := RegistriesYAML("no-port"); err == nil {
		t.Fatal("no error for a registry without port")
	}
}

func TestNodeEndpoint(t *testing.T) {
	for _, tc := range []struct{ listen, want, err string }{
		{":5000", "127.0.0.1:5000", ""},
		{"0.0.0.0:5000", "127.0.0.1:5000", ""},
		{"[::]:5000", "127.0.0.1:5000", ""},
		{"127.0.0.2:5000", "127.0.0.2:5000", ""},
		{"[::1]:5000", "[::1]:5000", ""},
		{"192.168.1.10:5000", "192.168.1.10:5000", ""},
		{"localhost:5000", "localhost:5000", ""},
		{":0", "", "port number"},
		{":http", "", "port number"},
		{"5000", "", "host:port"},
		{"[fe80::1%eth0]:5000", "", "zone"},
		{"bad_host:5000", "", "bad host"},
	} {
		got, err := NodeEndpoint(tc.listen)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NodeEndpoint(%q) = %q, %v; want an error saying %q", tc.listen, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NodeEndpoint(%q) = %q, %v; want %q", tc.listen, got, err, tc.want)
		}
	}
}

func FuzzNodeEndpoint(f *testing.F) {
	f.Add(":5000")
	f.Add("[::1]:5000")
	f.Add("127.0.0.2:5000")
	f.Fuzz(func(t *testing.T, listen string) {
		ep, err := NodeEndpoint(listen)
		if err != nil {
			return
		}
		// Whatever it accepts, registries.yaml and hosts.toml accept too.
		if _, err := EndpointURL(ep); err != nil {
			t.Fatalf("NodeEndpoint(%q) = %q, which EndpointURL refuses: %v", listen, ep, err)
		}
		if _, err := RegistriesYAML(ep); err != nil {
			t.Fatalf("NodeEndpoint(%q) = %q, which RegistriesYAML refuses: %v", listen, ep, err)
		}
	})
}
