package lfs

import "github.com/prometheus/client_golang/prometheus"

// collector exports the LFS store's state per repository, read from Status
// at scrape time:
//
//	ballast_lfs_objects{repo}            objects on site, verified
//	ballast_lfs_bytes{repo}              their bytes
//	ballast_lfs_pending_objects{repo}    objects of the history not on site (last pass)
//	ballast_lfs_malformed_pointers{repo} malformed pointer files in the history
type collector struct {
	m                                  *Mirror
	objects, bytes, pending, malformed *prometheus.Desc
}

func newCollector(m *Mirror) *collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"repo"}, nil)
	}
	return &collector{m: m,
		objects:   d("ballast_lfs_objects", "LFS objects on site, verified, by repository."),
		bytes:     d("ballast_lfs_bytes", "Bytes of the LFS objects on site, by repository."),
		pending:   d("ballast_lfs_pending_objects", "LFS objects of the mirrored history not on site after the last pass."),
		malformed: d("ballast_lfs_malformed_pointers", "Malformed LFS pointer files in the mirrored history."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.objects
	ch <- c.bytes
	ch <- c.pending
	ch <- c.malformed
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.m.Status() {
		ch <- prometheus.MustNewConstMetric(c.objects, prometheus.GaugeValue, float64(s.Objects), s.ID)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes), s.ID)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(len(s.Pending)), s.ID)
		ch <- prometheus.MustNewConstMetric(c.malformed, prometheus.GaugeValue, float64(s.Malformed), s.ID)
	}
}
