package charts_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/render/charts"
)

func TestParseRepoAuth(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []charts.RepoCredential
		err      string
	}{
		{"lines and comments", "# charts\n\nhttps://charts.example.com/private ci:pa:ss word\r\nhttp://127.0.0.1:8879 a:\n",
			[]charts.RepoCredential{{"https://charts.example.com/private", "ci", "pa:ss word"}, {"http://127.0.0.1:8879", "a", ""}}, ""},
		{"no password separator", "https://x.example.com ci\n", nil, "line 1"},
		{"credentials in the URL", "https://u:p@x.example.com ci:p\n", nil, "line 1"},
		{"not http", "oci://x.example.com ci:p\n", nil, "not an http(s)"},
		{"no user", "\nhttps://x.example.com :secret\n", nil, "line 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := charts.ParseRepoAuth([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("err %v, want %q (and no password)", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseRepoAuth(f *testing.F) {
	f.Add([]byte("https://charts.example.com/private ci:secret\n# c\n"))
	f.Add([]byte("http://[::1]:80 a:b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		creds, err := charts.ParseRepoAuth(data)
		if err != nil {
			return
		}
		for _, c := range creds {
			if c.URLPrefix == "" || c.Username == "" {
				t.Fatalf("accepted %+v", c)
			}
		}
	})
}
