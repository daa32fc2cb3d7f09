package ocitar

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

type entry struct {
	h    tar.Header
	data string
}

func build(es ...entry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := e.h
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		h.Mode = 0o644
		tw.WriteHeader(&h)
		tw.Write([]byte(e.data))
	}
	tw.Close()
	return b.Bytes()
}

func read(b []byte) (*Archive, error) { return Read(bytes.NewReader(b), int64(len(b)), nil) }

func TestRead(t *testing.T) {
	good := build(entry{tar.Header{Name: "dir/", Typeflag: tar.TypeDir}, ""}, entry{tar.Header{Name: "dir/a"}, "hello"}, entry{tar.Header{Name: "./b"}, "world"})
	a, err := read(good)
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.File("dir/a")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if string(got) != "hello" || strings.Join(a.Names(), ",") != "dir/a,b" {
		t.Fatalf("read %q, names %v", got, a.Names())
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"absolute", build(entry{tar.Header{Name: "/etc/passwd"}, "x"}), "absolute"},
		{"dotdot", build(entry{tar.Header{Name: "a/../../x"}, "x"}), ".. refused"},
		{"symlink", build(entry{tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, ""}), "refused"},
		{"hardlink", build(entry{tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "a"}, ""}), "refused"},
		{"device", build(entry{tar.Header{Name: "d", Typeflag: tar.TypeBlock}, ""}), "refused"},
		{"fifo", build(entry{tar.Header{Name: "f", Typeflag: tar.TypeFifo}, ""}), "refused"},
		{"duplicate", build(entry{tar.Header{Name: "a"}, "1"}, entry{tar.Header{Name: "./a"}, "2"}), "twice"},
		{"backslash", build(entry{tar.Header{Name: `a\..\x`}, "1"}), "bad name"},
		{"truncated", good[:700], "truncated"},
		{"cut between entries", good[:1536], "truncated"},
		{"empty", build(), "empty"},
		{"garbage", []byte("hello world"), "entry 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzRead(f *testing.F) {
	f.Add(build(entry{tar.Header{Name: "a"}, "hello"}))
	f.Add(build(entry{tar.Header{Name: "../a"}, "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := read(b)
		if err != nil {
			return
		}
		for _, n := range a.Names() {
			if c, err := CleanName(n); err != nil || c != n {
				t.Fatalf("unsafe name %q accepted", n)
			}
			r, err := a.File(n)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatalf("listed file %q unreadable: %v", n, err)
			}
		}
	})
}
