package release

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	good := "apps:\n  - path: apps/web\n  - application: argocd/app.yaml\nextraImages: [busybox:1.36]\nplatforms: [linux/amd64, linux/arm64]\n"
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Apps) != 2 || c.Apps[1].Application != "argocd/app.yaml" || len(c.Platforms) != 2 {
		t.Fatalf("%+v", c)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "nothing to bundle"},
		{"unknown field", "apps: [{path: a}]\nimages: [x]\n", `unknown field "images"`},
		{"typo in app", "apps: [{pth: a}]\n", `unknown field "pth"`},
		{"both", "apps: [{path: a, application: b}]\n", "not both"},
		{"neither", "apps: [{}]\n", "set path or application"},
		{"absolute", "apps: [{path: /etc}]\n", "relative path"},
		{"dotdot", "apps: [{path: a/../../b}]\n", "leaves the repository"},
		{"bad image", "extraImages: ['Not An Image']\n", "extraImages[0]"},
		{"bad platform", "apps: [{path: a}]\nplatforms: [linux]\n", "platforms"},
		{"comma platform", "apps: [{path: a}]\nplatforms: ['linux/amd64,linux/arm64']\n", "platforms[0]"},
		{"not yaml", "apps: [\n", "ballast.yaml"},
		{"wrong type", "apps: a\n", "ballast.yaml"},
		{"huge", strings.Repeat("#", maxConfigSize+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("apps:\n  - path: apps/web\nextraImages: [busybox:1.36]\nplatforms: [linux/amd64]\n"))
	f.Add([]byte("apps: [{application: a.yaml}]"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseConfig(in)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		for _, a := range c.Apps {
			if strings.HasPrefix(a.Path+a.Application, "/") {
				t.Fatalf("absolute path accepted: %+v", a)
			}
		}
	})
}
