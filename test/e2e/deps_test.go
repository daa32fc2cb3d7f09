package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/cosigncli"
)

// requires reads the require directives of a go.mod: module path → version.
func requires(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	inBlock := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "":
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case line == "require (":
			inBlock = true
			continue
		case strings.HasPrefix(line, "require "):
			line = strings.TrimSpace(strings.TrimPrefix(line, "require "))
		case !inBlock:
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: require %q: want module version", n, line)
		}
		out[f[0]] = f[1]
	}
	return out, sc.Err()
}

// TestHelmDepsInStep keeps the helm wrapper module (test/e2e/deps/helm)
// on exactly the module versions of ballast's own go.mod. ballast links
// Helm's library, so with the same versions and the same build flags
// (deps/build.sh) the cold build of the helm CLI takes every package
// ballast already compiled from the Go build cache. A version that drifts
// apart makes that build compile its own copy (minutes on 2 cores), which
// this test catches without building anything.
func TestHelmDepsInStep(t *testing.T) {
	main, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	wrapper, err := os.ReadFile(filepath.Join("deps", "helm", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mainReq, err := requires(main)
	if err != nil {
		t.Fatalf("go.mod: %v", err)
	}
	helmReq, err := requires(wrapper)
	if err != nil {
		t.Fatalf("deps/helm/go.mod: %v", err)
	}
	if v := helmReq["helm.sh/helm/v3"]; v != "v"+strings.TrimPrefix(helmVersion, "v") {
		t.Errorf("deps/helm/go.mod requires helm.sh/helm/v3 %q, want %s (helmVersion, deps/build.sh)", v, helmVersion)
	}
	shared := 0
	for mod, v := range helmReq {
		mv, ok := mainReq[mod]
		if !ok {
			continue
		}
		shared++
		if mv != v {
			t.Errorf("%s: deps/helm/go.mod has %s, ballast's go.mod %s: copy ballast's versions into the wrapper (see deps/build.sh) and go mod tidy there", mod, v, mv)
		}
	}
	if shared < 50 {
		t.Errorf("only %d modules shared between deps/helm/go.mod and go.mod: the parser or the wrapper is off", shared)
	}
}

func TestRequires(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]string
		err      bool
	}{
		{"block and single", "module x\n\ngo 1.26.0\n\nrequire a.b/c v1.0.0\n\nrequire (\n\td.e/f v0.1.0 // indirect\n\n\tg.h/i v2.0.0+incompatible\n)\nreplace a.b/c => ../c\n",
			map[string]string{"a.b/c": "v1.0.0", "d.e/f": "v0.1.0", "g.h/i": "v2.0.0+incompatible"}, false},
		{"tool is not a require", "tool helm.sh/helm/v3/cmd/helm\nrequire (\n\thelm.sh/helm/v3 v3.22.0\n)\n", map[string]string{"helm.sh/helm/v3": "v3.22.0"}, false},
		{"malformed", "require (\n\tonlypath\n)\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := requires([]byte(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCosignDepsInStep keeps the cosign version in one step across the
// wrapper module (deps/cosign/go.mod), the deps build (deps/build.sh) and
// the test helper that finds the binary (internal/testutil/cosigncli).
func TestCosignDepsInStep(t *testing.T) {
	wrapper, err := os.ReadFile(filepath.Join("deps", "cosign", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := requires(wrapper)
	if err != nil {
		t.Fatalf("deps/cosign/go.mod: %v", err)
	}
	script, err := os.ReadFile(filepath.Join("deps", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if v := req["github.com/sigstore/cosign/v2"]; v != cosigncli.Version {
		t.Errorf("deps/cosign/go.mod requires cosign %q, cosigncli.Version is %s", v, cosigncli.Version)
	}
	if !strings.Contains(string(script), "\ncosign_version="+cosigncli.Version+"\n") {
		t.Errorf("deps/build.sh does not set cosign_version=%s (cosigncli.Version)", cosigncli.Version)
	}
}
