package oci

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    v1.Platform // as written
		norm    string      // normalized, as String writes it
		wantErr string
	}{
		{in: "linux/amd64", want: v1.Platform{OS: "linux", Architecture: "amd64"}, norm: "linux/amd64"},
		{in: "linux/arm64/v8", want: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, norm: "linux/arm64"},
		{in: "linux/aarch64", want: v1.Platform{OS: "linux", Architecture: "aarch64"}, norm: "linux/arm64"},
		{in: "linux/arm", want: v1.Platform{OS: "linux", Architecture: "arm"}, norm: "linux/arm/v7"},
		{in: "linux/arm/5", want: v1.Platform{OS: "linux", Architecture: "arm", Variant: "5"}, norm: "linux/arm/v5"},
		{in: "linux/armhf", want: v1.Platform{OS: "linux", Architecture: "armhf"}, norm: "linux/arm/v7"},
		{in: "linux/armel", want: v1.Platform{OS: "linux", Architecture: "armel"}, norm: "linux/arm/v6"},
		{in: "linux/x86_64", want: v1.Platform{OS: "linux", Architecture: "x86_64"}, norm: "linux/amd64"},
		{in: "linux/amd64/v1", want: v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v1"}, norm: "linux/amd64"},
		{in: "linux/amd64/v3", want: v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, norm: "linux/amd64/v3"},
		{in: "linux/i386", want: v1.Platform{OS: "linux", Architecture: "i386"}, norm: "linux/386"},
		{in: "macos/arm64", want: v1.Platform{OS: "macos", Architecture: "arm64"}, norm: "darwin/arm64"},
		{in: "linux/riscv64", want: v1.Platform{OS: "linux", Architecture: "riscv64"}, norm: "linux/riscv64"},
		{in: "windows(10.0.17763)/amd64", want: v1.Platform{OS: "windows", OSVersion: "10.0.17763", Architecture: "amd64"}, norm: "windows(10.0.17763)/amd64"},
		{in: "linux", wantErr: "want os/arch"},
		{in: "linux/amd64/v1/x", wantErr: "want os/arch"},
		{in: "linux//v1", wantErr: `bad component ""`},
		{in: "Linux/AMD64", wantErr: `bad component "Linux"`},
		{in: "linux/amd 64", wantErr: "bad component"},
		{in: "windows()/amd64", wantErr: "bad OS version"},
		{in: "windows(10.0/amd64", wantErr: "bad OS version"},
		{in: "windows(10 0)/amd64", wantErr: "bad OS version"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePlatform(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePlatform(%q) = %v, %v; want error containing %q", tc.in, p, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !p.Equals(tc.want) {
				t.Fatalf("ParsePlatform(%q) = %+v, want %+v", tc.in, p, tc.want)
			}
			if got := platformString(NormalizePlatform(p)); got != tc.norm {
				t.Fatalf("normalized %q = %q, want %q", tc.in, got, tc.norm)
			}
		})
	}
}

// TestPlatformMatch covers the siblings of the arm64 case: a variant present
// or not on either side, OS version and features, unknown architectures,
// and windows.
func TestPlatformMatch(t *testing.T) {
	win := func(version string, features ...string) *v1.Platform {
		return &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: version, OSFeatures: features}
	}
	plat := func(os, arch, variant string) *v1.Platform {
		return &v1.Platform{OS: os, Architecture: arch, Variant: variant}
	}
	tests := []struct {
		name  string
		want  string
		child *v1.Platform
		match bool
	}{
		{"arm64/v8 wanted, index says arm64 (buildx)", "linux/arm64/v8", plat("linux", "arm64", ""), true},
		{"arm64 wanted, index says arm64/v8 (Docker Hub)", "linux/arm64", plat("linux", "arm64", "v8"), true},
		{"arm64/v8 both", "linux/arm64/v8", plat("linux", "arm64", "v8"), true},
		{"arm64 wanted, index says aarch64", "linux/arm64", plat("linux", "aarch64", ""), true},
		{"arm64 wanted, index says arm64/v9", "linux/arm64", plat("linux", "arm64", "v9"), false},
		{"arm wanted, index says arm/v7", "linux/arm", plat("linux", "arm", "v7"), true},
		{"arm/v7 wanted, index says arm", "linux/arm/v7", plat("linux", "arm", ""), true},
		{"arm/v6 wanted, index says arm", "linux/arm/v6", plat("linux", "arm", ""), false},
		{"arm wanted, index says arm/v6", "linux/arm", plat("linux", "arm", "v6"), false},
		{"arm/v7 wanted, index says arm64", "linux/arm/v7", plat("linux", "arm64", ""), false},
		{"amd64 wanted, index says amd64/v1", "linux/amd64", plat("linux", "amd64", "v1"), true},
		{"amd64/v1 wanted, index says amd64", "linux/amd64/v1", plat("linux", "amd64", ""), true},
		{"amd64 wanted, index says amd64/v3", "linux/amd64", plat("linux", "amd64", "v3"), false},
		{"amd64/v3 both", "linux/amd64/v3", plat("linux", "amd64", "v3"), true},
		{"amd64 wanted, index says x86_64", "linux/amd64", plat("linux", "x86_64", ""), true},
		{"amd64 wanted, index says arm64", "linux/amd64", plat("linux", "arm64", ""), false},
		{"unknown arch matches itself", "linux/riscv64", plat("linux", "riscv64", ""), true},
		{"unknown arch keeps its variant", "linux/riscv64", plat("linux", "riscv64", "rva23"), false},
		{"unknown arch is not another", "linux/riscv64", plat("linux", "loong64", ""), false},
		{"attestation entry", "linux/amd64", plat("unknown", "unknown", ""), false},
		{"windows is not linux", "linux/amd64", win("10.0.17763.5458"), false},
		{"linux is not windows", "windows/amd64", plat("linux", "amd64", ""), false},
		{"windows, any version", "windows/amd64", win("10.0.17763.5458"), true},
		{"windows, version prefix", "windows(10.0.17763)/amd64", win("10.0.17763.5458"), true},
		{"windows, exact version", "windows(10.0.17763.5458)/amd64", win("10.0.17763.5458"), true},
		{"windows, other build", "windows(10.0.20348)/amd64", win("10.0.17763.5458"), false},
		{"windows, not a dot prefix", "windows(10.0.1776)/amd64", win("10.0.17763.5458"), false},
		{"windows, version wanted, none given", "windows(10.0.17763)/amd64", win(""), false},
		{"child features do not stop a match", "windows/amd64", win("10.0.17763.5458", "win32k"), true},
		{"no platform on the child is kept", "linux/amd64", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := ParsePlatforms(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := sel.Match(tc.child); got != tc.match {
				t.Fatalf("%s selects %+v: %v, want %v", tc.want, tc.child, got, tc.match)
			}
		})
	}
	t.Run("wanted features", func(t *testing.T) {
		sel := Platforms{{OS: "windows", Architecture: "amd64", OSFeatures: []string{"win32k"}}}
		if !sel.Match(win("10.0.1", "win32k", "other")) || sel.Match(win("10.0.1")) || sel.Match(win("10.0.1", "other")) {
			t.Fatal("wanted OS features must all be the child's")
		}
	})
	t.Run("empty selection keeps all", func(t *testing.T) {
		if !Platforms(nil).Match(plat("plan9", "mips", "")) {
			t.Fatal("empty selection dropped a child")
		}
	})
}

// TestChildrenNoPlatform: a selection that matches no entry of an index is
// an error naming what the index has, never an empty (and so "complete")
// selection.
func TestChildrenNoPlatform(t *testing.T) {
	entry := func(seed string, p *v1.Platform) v1.Descriptor {
		d := blob(seed)
		d.MediaType, d.Platform = types.OCIManifestSchema1, p
		return d
	}
	index := func(ds ...v1.Descriptor) []byte {
		raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	amd := entry("a", &v1.Platform{OS: "linux", Architecture: "amd64"})
	armv7 := entry("b", &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"})
	arm64 := entry("c", &v1.Platform{OS: "linux", Architecture: "arm64"})
	att := entry("d", &v1.Platform{OS: "unknown", Architecture: "unknown"})
	anyPlat := entry("e", nil)
	tests := []struct {
		name    string
		raw     []byte
		sel     string
		want    []v1.Descriptor
		wantErr string
	}{
		{"arm64/v8 selects buildx's arm64", index(amd, arm64, att), "linux/arm64/v8", []v1.Descriptor{arm64}, ""},
		{"nothing for arm64/v8", index(amd, armv7, att), "linux/arm64/v8",
			nil, "no manifest for linux/arm64/v8 in index sha256:" + hashOf(index(amd, armv7, att)).Hex + "; it has linux/amd64, linux/arm/v7"},
		{"only attestations", index(att), "linux/amd64", nil, "no platform-specific manifests"},
		{"an entry without platform is kept", index(amd, anyPlat), "linux/arm64", []v1.Descriptor{anyPlat}, ""},
		{"two wanted, one there", index(amd, armv7), "linux/arm64,linux/amd64", []v1.Descriptor{amd}, ""},
		{"no selection keeps all", index(amd, armv7), "", []v1.Descriptor{amd, armv7}, ""},
		{"empty index is no error", index(), "linux/amd64", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := ParsePlatforms(tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			ms, _, err := Children(tc.raw, types.OCIImageIndex, sel)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrNoPlatform) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrNoPlatform containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(tc.want) {
				t.Fatalf("selected %d, want %d", len(ms), len(tc.want))
			}
			for i := range ms {
				if ms[i].Digest != tc.want[i].Digest {
					t.Fatalf("selected[%d] = %s, want %s", i, ms[i].Digest, tc.want[i].Digest)
				}
			}
		})
	}
}

func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm64/v8", "linux/arm", "windows(10.0.17763)/amd64", "linux//", "(/)", "a(b)/c/d", "linux/aarch64/8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlatform(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if p.OS == "" || p.Architecture == "" {
			t.Fatalf("ParsePlatform(%q) = %+v: empty os or arch", s, p)
		}
		// What String writes, ParsePlatform reads back the same.
		back, err := ParsePlatforms(Platforms{p}.String())
		if err != nil || len(back) != 1 || !back[0].Equals(p) {
			t.Fatalf("round trip of %q: %+v, %v", s, back, err)
		}
		// Normalizing is idempotent and a platform selects itself.
		n := NormalizePlatform(p)
		if !NormalizePlatform(n).Equals(n) {
			t.Fatalf("NormalizePlatform not idempotent on %+v", p)
		}
		if !(Platforms{p}).Match(&p) || !(Platforms{n}).Match(&p) || !(Platforms{p}).Match(&n) {
			t.Fatalf("%q does not select itself", s)
		}
	})
}
