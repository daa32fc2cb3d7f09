package units

import (
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 12900000: "12.3 MiB", 1 << 40: "1.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"1234", 1234, ""},
		{"500MB", 500_000_000, ""},
		{"500 MB", 500_000_000, ""},
		{"1.5GB", 1_500_000_000, ""},
		{"2GiB", 2 << 30, ""},
		{"1.5KiB", 1536, ""},
		{"10kB", 10_000, ""},
		{"10KB", 10_000, ""},
		{"8bit", 1, ""},
		{"1Mbit", 125_000, ""},
		{"3bit", 0, "whole number"},
		{"1.3B", 0, "whole number"},
		{"", 0, "not a quantity"},
		{"MB", 0, "not a quantity"},
		{"-1MB", 0, "not a quantity"},
		{"1..2MB", 0, "not a number"},
		{".5MB", 0, "not a number"},
		{"5mb", 0, "unknown unit"},
		{"5 MB/s", 0, "unknown unit"},
		{"10EB", 0, "unknown unit"},
		{"99999999TiB", 0, "too large"},
		{"12345678901234567890", 0, "number too long"},
	} {
		got, err := ParseBytes(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseBytes(%q) = %d, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"2000000", 2_000_000, ""},
		{"2MB/s", 2_000_000, ""},
		{"2 MB/s", 2_000_000, ""},
		{"512kbit/s", 64_000, ""},
		{"20Mbit/s", 2_500_000, ""},
		{"1MiB/s", 1 << 20, ""},
		{"2MB", 0, "ends in /s"},
		{"2/s", 0, "unit goes before /s"},
		{"/s", 0, "no quantity"},
		{"2MB/h", 0, "ends in /s"},
		{"fast", 0, "not a quantity"},
	} {
		got, err := ParseRate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRate(%q) = %d, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseBytes: never a panic; an accepted quantity is not negative and
// formats back to the same count.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"500MB", "1.5GiB", "8bit", "0", "2MB/s", "1.", "9999999999999999999TB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseBytes(%q) = %d", s, n)
		}
		r, err := ParseRate(s)
		if err == nil && r < 0 {
			t.Fatalf("ParseRate(%q) = %d", s, r)
		}
	})
}
