package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Platforms is a platform selection; empty selects every platform. It is
// the one place where platforms are parsed and compared: edge config
// (`platforms`), the copy engine's filter, completeness checks and
// `bundle --platform` all go through it.
//
// Platforms are compared as containerd compares them, after normalization
// (NormalizePlatform): linux/arm64 and linux/arm64/v8 are one platform,
// linux/arm is linux/arm/v7, linux/amd64 is linux/amd64/v1, aarch64 is arm64,
// x86_64 is amd64. Beyond that the match is exact: linux/amd64 does not
// select linux/amd64/v3 (a v1 machine cannot run it), and an unknown
// architecture matches only itself.
type Platforms []v1.Platform

// ErrNoPlatform is wrapped when a selection matches no entry of an image
// index: the image has nothing for the selected platforms, so a copy of it
// cannot be complete.
var ErrNoPlatform = errors.New("no manifest for the selected platforms")

// ParsePlatforms parses a comma-separated list such as
// "linux/amd64,linux/arm64/v8" (see ParsePlatform). An empty string selects
// every platform.
func ParsePlatforms(s string) (Platforms, error) {
	var ps Platforms
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := ParsePlatform(f)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// ParsePlatform parses one platform, "os/arch" or "os/arch/variant", with an
// optional OS version in parentheses as containerd writes it
// ("windows(10.0.17763)/amd64"). It is returned as written, so messages
// echo the user's words; Match normalizes (NormalizePlatform) when it
// compares. Components are lowercase letters, digits, '_', '.' and '-';
// anything else is an error naming the component.
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant", s)
	}
	var osVersion string
	if os, rest, ok := strings.Cut(parts[0], "("); ok {
		v, ok := strings.CutSuffix(rest, ")")
		if !ok || v == "" || !validComponent(v) {
			return v1.Platform{}, fmt.Errorf("platform %q: bad OS version in %q (want os(version), e.g. windows(10.0.17763))", s, parts[0])
		}
		parts[0], osVersion = os, v
	}
	for _, p := range parts {
		if p == "" || !validComponent(p) {
			return v1.Platform{}, fmt.Errorf("platform %q: bad component %q (lowercase letters, digits, '_', '.', '-')", s, p)
		}
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1], OSVersion: osVersion}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func validComponent(s string) bool {
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == ""
}

// NormalizePlatform returns p in the canonical form containerd uses:
// lowercase OS and architecture; macos is darwin; x86_64 and x86-64 are
// amd64, whose v1 variant is dropped (v2..v4 stay); i386 is 386; aarch64 is
// arm64, whose v8 variant (8, v8, v8.0) is dropped and 9 is v9; armhf is
// arm/v7 and armel arm/v6; arm without a variant is arm/v7, and a bare digit
// variant of arm gains its "v". Other architectures and variants are kept as
// given (lowercased). OS version and features are kept.
func NormalizePlatform(p v1.Platform) v1.Platform {
	p.OS = strings.ToLower(p.OS)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	arch, variant := strings.ToLower(p.Architecture), strings.ToLower(p.Variant)
	switch arch {
	case "i386":
		arch, variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		arch = "amd64"
		if variant == "v1" {
			variant = ""
		}
	case "aarch64", "arm64":
		arch = "arm64"
		switch variant {
		case "8", "v8", "v8.0":
			variant = ""
		case "9", "9.0", "v9.0":
			variant = "v9"
		}
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
	}
	p.Architecture, p.Variant = arch, variant
	return p
}

// Match reports whether a child of an index with platform p is selected. A
// child without a platform is kept: nothing says it is not needed. A wanted
// OS version must equal the child's or be a dot-separated prefix of it
// (10.0.17763 selects 10.0.17763.5458); wanted OS features must all be the
// child's; a child's own OS version and features do not stop a selection
// that does not name them.
func (ps Platforms) Match(p *v1.Platform) bool {
	if len(ps) == 0 || p == nil {
		return true
	}
	got := NormalizePlatform(*p)
	for _, want := range ps {
		if platformMatches(got, NormalizePlatform(want)) {
			return true
		}
	}
	return false
}

func platformMatches(got, want v1.Platform) bool {
	if got.OS != want.OS || got.Architecture != want.Architecture || got.Variant != want.Variant {
		return false
	}
	if want.OSVersion != "" && got.OSVersion != want.OSVersion && !strings.HasPrefix(got.OSVersion, want.OSVersion+".") {
		return false
	}
	for _, f := range want.OSFeatures {
		if !slices.Contains(got.OSFeatures, f) {
			return false
		}
	}
	return true
}

// String is the comma-separated form ParsePlatforms reads.
func (ps Platforms) String() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = platformString(p)
	}
	return strings.Join(s, ",")
}

// platformString writes p as ParsePlatform reads it.
func platformString(p v1.Platform) string {
	s := p.OS
	if p.OSVersion != "" {
		s += "(" + p.OSVersion + ")"
	}
	s += "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// noPlatformError says which platforms an index offers when none of them
// was selected: "no manifest for linux/arm64 in index sha256:…; it has
// linux/amd64, linux/arm/v7".
func noPlatformError(raw []byte, sel Platforms, have []v1.Descriptor) error {
	var offered []string
	for _, d := range have {
		if d.Platform == nil {
			continue
		}
		n := NormalizePlatform(*d.Platform)
		if n.OS == "unknown" && n.Architecture == "unknown" {
			continue // attestations (buildx) are no platform to offer
		}
		if s := platformString(n); !slices.Contains(offered, s) {
			offered = append(offered, s)
		}
	}
	sum := sha256.Sum256(raw)
	has := "no platform-specific manifests"
	if len(offered) > 0 {
		has = "it has " + strings.Join(offered, ", ")
	}
	return fmt.Errorf("%w: no manifest for %s in index sha256:%s; %s", ErrNoPlatform, sel, hex.EncodeToString(sum[:]), has)
}
