package syncer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/testkeys"
)

// BenchmarkTrustCheck measures what the trust policy adds to the
// completeness check of one revision at the edge (a 20-image bundle, its
// index signed with an ECDSA P-256 key as cosign signs): the baseline is
// the completeness check alone (BundleComplete without trust), the same
// call with trust adds reading the signature manifest and payload from the
// edge registry and verifying them. It reports both in ms per revision,
// their ratio, and the bytes the signature adds to a bundle.
func BenchmarkTrustCheck(b *testing.B) {
	dir := b.TempDir()
	signer := testkeys.Signer(b)
	pub := testkeys.WritePublicKey(b, signer, filepath.Join(dir, "cosign.pub"))
	s := newSite(b, func(c *config.Config) { c.Trust = &config.Trust{PublicKeys: []string{pub}} })
	if err := s.cfg.Trust.LoadKeys(); err != nil {
		b.Fatal(err)
	}
	sha := s.commit(map[string]string{"a": "1"})
	arts := map[string]artifact{}
	for i := 0; i < 20; i++ {
		arts[fmt.Sprintf("ghcr.io/org/app%d:v1", i)] = testimage.Image(b, "linux/amd64", 2, 1<<10)
	}
	d := pushBundle(b, s.up, s.bundles, sha, arts)
	sig, err := signer.Sign(s.up.Repo(s.bundles), d)
	if err != nil {
		b.Fatal(err)
	}
	for h, blob := range sig.Blobs {
		ref, _ := name.NewDigest(s.up.Repo(s.bundles)+"@"+h.String(), name.Insecure)
		if err := remote.WriteLayer(ref.Context(), static.NewLayer(blob, types.MediaType("application/octet-stream"))); err != nil {
			b.Fatal(err)
		}
	}
	tag, _ := name.NewTag(s.up.Repo(s.bundles)+":"+sig.Tag, name.Insecure)
	if err := remote.Put(tag, rawManifest{sig.Manifest, types.OCIManifestSchema1}); err != nil {
		b.Fatal(err)
	}
	sigBytes := sig.Descriptor.Size
	for _, blob := range sig.Blobs {
		sigBytes += int64(len(blob))
	}
	if res, err := s.sync.Pass(context.Background()); err != nil || res.Complete != 1 {
		b.Fatalf("pass: %+v %v", res, err)
	}
	trusting := s.sync
	plain := *s.cfg
	plain.Trust = nil
	o := s.opts
	o.Config = &plain
	baseline, err := syncer.New(o)
	if err != nil {
		b.Fatal(err)
	}
	url := s.cfg.Repositories[0].URL
	ctx := context.Background()
	var tBase, tTrust time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		start := time.Now()
		if ok, err := baseline.BundleComplete(ctx, url, sha); err != nil || !ok {
			b.Fatalf("baseline: %v %v", ok, err)
		}
		tBase += time.Since(start)
		start = time.Now()
		if ok, err := trusting.BundleComplete(ctx, url, sha); err != nil || !ok {
			b.Fatalf("with trust: %v %v", ok, err)
		}
		tTrust += time.Since(start)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(tBase), "complete-ms/rev")
	b.ReportMetric(ms(tTrust), "complete+trust-ms/rev")
	b.ReportMetric(ms(tTrust-tBase), "signature-ms/rev")
	b.ReportMetric(tTrust.Seconds()/tBase.Seconds(), "ratio")
	b.ReportMetric(float64(sigBytes), "signature-bytes")
}
