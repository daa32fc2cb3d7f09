package delta

import (
	"bytes"
	"testing"
)

func TestAlignRoundTrip(t *testing.T) {
	old := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 2000)
	nw := append(append(append([]byte(nil), old[:30000]...), []byte("inserted bytes")...), old[30000:]...)
	nw[50000] ^= 1
	segs, diff := align(nw, old)
	ts := []transform{{tOff: 0, tLen: int64(len(nw)), bOff: 0, bLen: int64(len(old)), segs: segs}}
	back, err := decodeTransforms(encodeTransforms(ts), int64(len(nw)), int64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	u := &undoWriter{w: &out, base: old, ts: back}
	for i := 0; i < len(diff); i += 777 {
		u.Write(diff[i:min(i+777, len(diff))])
	}
	if !bytes.Equal(out.Bytes(), nw) {
		t.Fatal("undo does not give the target back")
	}
	if z := bytes.Count(diff, []byte{0}); z < len(diff)*9/10 {
		t.Fatalf("only %d of %d differences are zero", z, len(diff))
	}
}

func FuzzDecodeTransforms(f *testing.F) {
	f.Add(encodeTransforms([]transform{{tOff: 10, tLen: 100, bOff: 5, bLen: 90, segs: []seg{{0, 0}, {40, -3}}}}), int64(200), int64(100))
	f.Add([]byte{0}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, target, base int64) {
		if target < 0 || base < 0 || target > 1<<20 || base > 1<<20 {
			return
		}
		ts, err := decodeTransforms(b, target, base)
		if err != nil {
			return
		}
		// What parses is applied without panic.
		u := &undoWriter{w: &bytes.Buffer{}, base: make([]byte, base), ts: ts}
		u.Write(make([]byte, target))
	})
}
