package argoglob

import "testing"

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"*.yaml", []string{"a.yaml", "sub/b.yaml"}, []string{"a.yml", "a.yaml.bak"}},
		{"sub/*", []string{"sub/a.yaml", "sub/x/y.json"}, []string{"a.yaml", "other/sub/a.yaml"}},
		{"{a,b}.yaml", []string{"a.yaml", "b.yaml"}, []string{"c.yaml", "{a,b}.yaml"}},
		{"{x/{a,b},c}.json", []string{"x/a.json", "x/b.json", "c.json"}, []string{"x/c.json"}},
		{"?.yaml", []string{"a.yaml"}, []string{"ab.yaml"}},
		{"[!a]*.yaml", []string{"b.yaml"}, []string{"a.yaml"}},
		{"[a-c]?.yaml", []string{"b1.yaml"}, []string{"d1.yaml"}},
		{`\*.yaml`, []string{"*.yaml"}, []string{"a.yaml"}},
		{"a+b(c).yaml", []string{"a+b(c).yaml"}, []string{"aab(c).yaml"}},
	}
	for _, tt := range tests {
		re, err := Compile(tt.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		for _, m := range tt.match {
			if !re.MatchString(m) {
				t.Errorf("%q should match %q", tt.pattern, m)
			}
		}
		for _, m := range tt.noMatch {
			if re.MatchString(m) {
				t.Errorf("%q should not match %q", tt.pattern, m)
			}
		}
	}
	for _, bad := range []string{"[a", "{a,b", `a\`, "[]"} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func FuzzGlob(f *testing.F) {
	for _, s := range []string{"*.yaml", "{a,{b,c}}[!x-z]?", `\{`, "[", "}{,"} {
		f.Add(s, "a/b.yaml")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		re, err := Compile(pattern)
		if err == nil {
			re.MatchString(name)
		}
	})
}
