package redact

import (
	"strings"
	"testing"
	"unicode"
)

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://h/a.git", "https://h/a.git"},
		{"https://u:secret@h/a.git", "https://***@h/a.git"},
		{"https://ghp_token@github.com/o/r", "https://***@github.com/o/r"},
		{"ssh://git@h/a.git", "ssh://git@h/a.git"},
		{"ssh://git:secret@h/a.git", "ssh://***@h/a.git"},
		{"SSH://git:secret@h/a.git", "SSH://***@h/a.git"},
		{"git://u:secret@h/a", "git://***@h/a"},
		{`fatal: unable to access 'https://u:secret@h/a/': 403`, `fatal: unable to access 'https://***@h/a/': 403`},
		{`parse "http://u:secret@h/%zz": invalid URL escape`, `parse "http://***@h/%zz": invalid URL escape`},
		{"two https://a:b@x/ and http://c:d@y/", "two https://***@x/ and http://***@y/"},
		{"mail me at someone@example.com", "mail me at someone@example.com"},
		{"ssh://us%3Aer@h/x", "ssh://***@h/x"},
		{`"  ://:secret@": not a URL`, `"  ://***@": not a URL`},
		{"1http://u:secret@h", "1http://***@h"},
		{"-https://u:secret@h", "-https://***@h"},
	} {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzText: no password given in a URL's userinfo survives redaction.
func FuzzText(f *testing.F) {
	f.Add("https", "user", "secretpw", "host/p")
	f.Add("ssh", "git", "hunter22", "h:22/x")
	f.Fuzz(func(t *testing.T, scheme, user, pw, rest string) {
		// Userinfo ends at white space, '/', '@', quotes or angle brackets:
		// a URL has none of them there (config refuses such URLs).
		stop := func(s string) bool {
			return strings.ContainsAny(s, "/@\"'<>") || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
		}
		// The password may also occur in what stays (scheme, host, path):
		// then its presence proves nothing.
		if len(pw) < 6 || stop(pw) || stop(user) || strings.Contains("error: "+scheme+"://"+Mask+"@"+rest, pw) {
			return
		}
		if !isScheme(scheme) {
			return
		}
		s := "error: " + scheme + "://" + user + ":" + pw + "@" + rest
		if got := Text(s); strings.Contains(got, pw) {
			t.Fatalf("Text(%q) = %q keeps the password", s, got)
		}
	})
}

func isScheme(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.':
		default:
			return false
		}
	}
	return true
}
