package syncer

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	passes       prometheus.Counter
	passDuration prometheus.Histogram
	lastSuccess  prometheus.Gauge
	linkBytes    prometheus.Counter
	blobsCopied  prometheus.Counter
	retries      prometheus.Counter
	deleted      prometheus.Counter
	// Trust policy (edge config trust).
	signatureChecks  *prometheus.CounterVec
	signatureSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, s *Syncer) *metrics {
	m := &metrics{
		passes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "ballast_sync_passes_total", Help: "Sync passes run."}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ballast_sync_pass_duration_seconds", Help: "Duration of sync passes.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
		lastSuccess:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ballast_sync_last_success_timestamp_seconds", Help: "When a sync pass last finished without errors."}),
		linkBytes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "ballast_sync_link_bytes_total", Help: "Bytes read from upstream registries."}),
		blobsCopied:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ballast_sync_blobs_copied_total", Help: "Blobs copied into the edge registry."}),
		retries:      prometheus.NewCounter(prometheus.CounterOpts{Name: "ballast_sync_retries_total", Help: "Transfer attempts that failed and were retried."}),
		deleted:      prometheus.NewCounter(prometheus.CounterOpts{Name: "ballast_sync_bundles_deleted_total", Help: "Bundles deleted by retention."}),
		signatureChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ballast_sync_signature_checks_total",
			Help: "Signature checks of bundle indexes and images by the trust policy, by result (trusted, untrusted)."}, []string{"result"}),
		signatureSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ballast_sync_signature_check_seconds",
			Help: "Duration of one signature check (read the signature and its payload, verify).", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
	}
	untrusted := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ballast_sync_untrusted_revisions",
		Help: "Wanted revisions whose bundle the trust policy refuses (state untrusted)."}, func() float64 {
		n := 0
		for _, r := range s.status.snapshot().Repos {
			for _, rv := range r.Revisions {
				if rv.State == StateUntrusted {
					n++
				}
			}
		}
		return float64(n)
	})
	if reg != nil {
		reg.MustRegister(m.passes, m.passDuration, m.lastSuccess, m.linkBytes, m.blobsCopied, m.retries, m.deleted, newLinkCollector(s),
			m.signatureChecks, m.signatureSeconds, untrusted)
		c := &s.deltaStats
		for _, f := range []struct {
			name, help string
			v          func() int64
		}{
			{"ballast_sync_delta_layers_total", "Layers made on site from a sub-layer delta, digest verified.", c.applied.Load},
			{"ballast_sync_delta_patch_bytes_total", "Patch bytes of the deltas applied.", c.patchBytes.Load},
			{"ballast_sync_delta_layer_bytes_total", "Compressed bytes of the layers made from deltas (what would have crossed the link).", c.layerBytes.Load},
			{"ballast_sync_delta_fallbacks_total", "Deltas refused on site (bad patch, base or digest): the whole layer was fetched.", c.fallbacks.Load},
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: f.name, Help: f.help}, func() float64 { return float64(f.v()) }))
		}
	}
	return m
}
