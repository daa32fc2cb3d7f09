package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBlobGet compares a blob GET through ballast's middleware (auth,
// read-only gate, ns routing) with the same GET on the bare Distribution
// handler, both over loopback HTTP in the same run. Metric "ratio" is
// ballast throughput / bare throughput.
func BenchmarkBlobGet(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	r, err := New(ctx, Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "creds")})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const size = 64 << 20
	blob := make([]byte, size)
	rand.Read(blob)
	dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(blob))
	c := &http.Client{Transport: r.Transport()}
	resp, err := c.Post("http://edge.invalid/v2/docker.io/library/bench/blobs/uploads/", "", nil)
	if err != nil || resp.StatusCode != 202 {
		b.Fatalf("start upload: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("PUT", "http://edge.invalid"+resp.Header.Get("Location")+"&digest="+dgst, bytes.NewReader(blob))
	if resp, err = c.Do(req); err != nil || resp.StatusCode != 201 {
		b.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()

	bare := httptest.NewServer(r.app)
	defer bare.Close()
	full := httptest.NewServer(r.Handler())
	defer full.Close()
	client := &http.Client{}
	get := func(url string) time.Duration {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d bytes, status %d, %v", url, n, resp.StatusCode, err)
		}
		return time.Since(start)
	}
	bareURL := bare.URL + "/v2/docker.io/library/bench/blobs/" + dgst
	fullURL := full.URL + "/v2/library/bench/blobs/" + dgst + "?ns=docker.io"
	get(bareURL) // warm the page cache
	get(fullURL)
	b.SetBytes(size)
	b.ResetTimer()
	var tBare, tFull time.Duration
	for i := 0; i < b.N; i++ {
		// Alternate the order so neither side always runs on a warmer cache.
		if i%2 == 0 {
			tBare += get(bareURL)
			tFull += get(fullURL)
		} else {
			tFull += get(fullURL)
			tBare += get(bareURL)
		}
	}
	b.StopTimer()
	mb := float64(size) * float64(b.N) / (1 << 20)
	b.ReportMetric(mb/tBare.Seconds(), "bare-MB/s")
	b.ReportMetric(mb/tFull.Seconds(), "ballast-MB/s")
	b.ReportMetric(tBare.Seconds()/tFull.Seconds(), "ratio")
}
