package oci

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestVerifyReader(t *testing.T) {
	content := []byte("the quick brown fox")
	d := v1.Descriptor{Digest: hashOf(content), Size: int64(len(content))}
	tests := []struct {
		name    string
		src     io.Reader
		d       v1.Descriptor
		want    string
		wantErr error
	}{
		{"exact", bytes.NewReader(content), d, string(content), nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(content)), d, string(content), nil},
		{"more than declared is not read", io.MultiReader(bytes.NewReader(content), strings.NewReader("EXTRA")), d, string(content), nil},
		{"tampered", bytes.NewReader([]byte("the quick brown cat")), d, "", ErrDigestMismatch},
		{"short", bytes.NewReader(content[:5]), d, "", io.ErrUnexpectedEOF},
		{"empty content", strings.NewReader(""), v1.Descriptor{Digest: hashOf(nil)}, "", nil},
		{"source error", iotest.ErrReader(errors.New("link cut")), d, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := io.ReadAll(VerifyReader(tc.src, tc.d))
			if tc.name == "source error" {
				if err == nil || !strings.Contains(err.Error(), "link cut") {
					t.Fatalf("err = %v, want the source's", err)
				}
				return
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("read %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("the end is judged before EOF", func(t *testing.T) {
		r := VerifyReader(bytes.NewReader([]byte("the quick brown cat")), d)
		buf := make([]byte, 64)
		n, err := r.Read(buf)
		if n != len(content) || !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("read %d, %v: the last Read must carry the mismatch", n, err)
		}
	})
}
