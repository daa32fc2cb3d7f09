package gitmirror

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestErrorTextWhole(t *testing.T) {
	stderr := "error: cannot lock ref 'refs/heads/release/2024': 'refs/heads/release' exists; cannot create 'refs/heads/release/2024'\n" +
		" ! [new branch]      release/2024 -> release/2024  (unable to update local ref)\n" +
		"error: some local refs could not be updated; try running\n" +
		" 'git remote prune origin' to remove any old, conflicting branches\n"
	got := errorText(stderr)
	want := "error: cannot lock ref 'refs/heads/release/2024': 'refs/heads/release' exists; cannot create 'refs/heads/release/2024'; " +
		"! [new branch]      release/2024 -> release/2024  (unable to update local ref); " +
		"error: some local refs could not be updated; try running 'git remote prune origin' to remove any old, conflicting branches"
	if got != want {
		t.Errorf("errorText:\n got %q\nwant %q", got, want)
	}
}

func TestCutText(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "fatal: repository not found", 100, "fatal: repository not found"},
		{"exact", "abc def", 7, "abc def"},
		{"on a word", "fatal: unable to access the upstream repository", 26, "fatal: unable to access…"},
		{"no space in reach: rune boundary", "ééééééééé", 8, "éé…"},
		{"multibyte word", "erreur : dépôt introuvable là-bas", 22, "erreur : dépôt…"},
		{"invalid utf-8 replaced", "bad \xff\xfe bytes", 100, "bad \uFFFD bytes"},
		{"tiny max", "abcdef", 2, "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cutText(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("cutText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func TestLimitedBufferKeepsHeadAndTail(t *testing.T) {
	b := &limitedBuffer{max: 32}
	_, _ = b.Write([]byte("fatal: first line\n"))
	for i := 0; i < 50; i++ {
		_, _ = b.Write([]byte("noise noise noise\n"))
	}
	_, _ = b.Write([]byte("error: last line\n"))
	got := b.String()
	if !strings.HasPrefix(got, "fatal: first line\n") || !strings.HasSuffix(got, "error: last line\n") || !strings.Contains(got, "…") {
		t.Errorf("limitedBuffer kept %q", got)
	}
}

func FuzzCutText(f *testing.F) {
	f.Add("error: cannot lock ref 'refs/heads/a/b': 'refs/heads/a' exists", 20)
	f.Add("ééé ééé", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := cutText(s, max)
		if !utf8.ValidString(got) {
			t.Fatalf("cutText(%q, %d) = %q: invalid UTF-8", s, max, got)
		}
		if len(got) > max && len(got) > len("…") {
			t.Fatalf("cutText(%q, %d) = %q: %d bytes", s, max, got, len(got))
		}
	})
}
