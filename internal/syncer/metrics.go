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
	}
	if reg != nil {
		reg.MustRegister(m.passes, m.passDuration, m.lastSuccess, m.linkBytes, m.blobsCopied, m.retries, m.deleted, newLinkCollector(s))
	}
	return m
}
