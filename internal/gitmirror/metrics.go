package gitmirror

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the mirror's Prometheus metrics. With no registerer they are
// still counted (cheaply) but never exported.
type metrics struct {
	attempts *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newMetrics(m *Mirror, reg prometheus.Registerer) *metrics {
	x := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ballast_git_fetch_attempts_total",
			Help: "Polls of an upstream git repository (ls-remote, and fetch when refs changed).",
		}, []string{"repo"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ballast_git_fetch_failures_total",
			Help: "Polls of an upstream git repository that failed.",
		}, []string{"repo"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ballast_git_fetch_duration_seconds",
			Help:    "Duration of polls of an upstream git repository, including fetches.",
			Buckets: prometheus.ExponentialBuckets(0.05, 3, 10),
		}, []string{"repo"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ballast_git_served_bytes_total",
			Help: "Bytes of smart HTTP responses served to git clients.",
		}, []string{"repo"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ballast_git_requests_in_flight",
			Help: "Smart HTTP git requests being served.",
		}),
	}
	if reg != nil {
		reg.MustRegister(x.attempts, x.failures, x.duration, x.bytes, x.inFlight, &ageCollector{m: m})
	}
	return x
}

func (x *metrics) fetchAttempt(repo string) { x.attempts.WithLabelValues(repo).Inc() }

func (x *metrics) fetchDone(repo string, d time.Duration, err error) {
	x.duration.WithLabelValues(repo).Observe(d.Seconds())
	if err != nil {
		x.failures.WithLabelValues(repo).Inc()
	}
}

func (x *metrics) served(repo string, n int64) { x.bytes.WithLabelValues(repo).Add(float64(n)) }

// ageCollector reports, at scrape time, how long ago each repository was
// last fetched successfully: the figure to alert on when a site has been
// offline too long.
type ageCollector struct{ m *Mirror }

var (
	ageDesc = prometheus.NewDesc("ballast_git_last_fetch_success_age_seconds",
		"Seconds since the last successful poll of the upstream (absent if never).", []string{"repo"}, nil)
	lastDesc = prometheus.NewDesc("ballast_git_last_fetch_success_timestamp_seconds",
		"Unix time of the last successful poll of the upstream (absent if never).", []string{"repo"}, nil)
)

func (c *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ageDesc; ch <- lastDesc }

func (c *ageCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, r := range c.m.repos {
		r.mu.Lock()
		last := r.lastSuccess
		r.mu.Unlock()
		if last.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(last).Seconds(), r.id)
		ch <- prometheus.MustNewConstMetric(lastDesc, prometheus.GaugeValue, float64(last.UnixNano())/1e9, r.id)
	}
}
