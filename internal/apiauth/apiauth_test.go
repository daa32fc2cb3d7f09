package apiauth

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "api-token")
	a, created, err := LoadOrCreate(p)
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	b, created, err := LoadOrCreate(p)
	if err != nil || created || b.Secret() != a.Secret() {
		t.Fatalf("second load: created=%v err=%v same=%v", created, err, b.Secret() == a.Secret())
	}
	if !a.Matches(b.Secret()) || a.Matches(b.Secret()+"x") || a.Matches("") || (Token{}).Matches("") {
		t.Fatal("Matches is wrong")
	}
	if strings.Contains(a.String(), a.Secret()) {
		t.Fatal("String shows the secret")
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".tmp-.api-token-*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestParse(t *testing.T) {
	good := strings.Repeat("a", MinLen)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{good, true}, {good + "\n", true}, {good + "\r\n", true},
		{"", false}, {good[1:], false}, {strings.Repeat("a", MaxLen+1), false},
		{good + " x", false}, {good + "\n" + good, false}, {good + "\x00", false}, {good + "é", false},
	} {
		_, err := Parse([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q): %v", tc.in, err)
		}
		if err != nil && strings.Contains(err.Error(), good) {
			t.Errorf("error quotes the token: %v", err)
		}
	}
}

func TestFromRequest(t *testing.T) {
	for _, tc := range []struct {
		h, want string
		ok      bool
	}{
		{"Bearer abc", "abc", true}, {"bearer abc", "abc", true}, {"Basic abc", "", false}, {"", "", false}, {"Bearer", "", false},
	} {
		r, _ := http.NewRequest(http.MethodPost, "http://x/", nil)
		if tc.h != "" {
			r.Header.Set("Authorization", tc.h)
		}
		got, ok := FromRequest(r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FromRequest(%q) = %q, %v", tc.h, got, ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(strings.Repeat("x", 40) + "\n"))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := Parse(b)
		if err != nil {
			return
		}
		if !tok.Matches(tok.Secret()) || len(tok.Secret()) < MinLen || strings.ContainsAny(tok.Secret(), " \n\r\t") {
			t.Fatalf("accepted %q as %q", b, tok.Secret())
		}
	})
}
