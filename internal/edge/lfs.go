package edge

import (
	"context"
)

// addLFS runs the LFS store (its passes follow the mirror's ref changes)
// and serves its API. Its batch API is served through the /git/ route
// (site.LFS.Wrap), at the repositories' mirror URLs.
func (d *Daemon) addLFS() {
	l := d.site.LFS
	d.AddService(Service{Name: "lfs", Run: func(ctx context.Context) error {
		select {
		case <-d.Mirror.Started():
		case <-ctx.Done():
			return nil
		}
		return l.Run(ctx, d.Mirror.Subscribe(ctx))
	}})
	d.AddRoute("/api/v1/lfs", l.APIHandler())
}
