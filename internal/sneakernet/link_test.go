package sneakernet_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestImportLinksBlobsTheSiteHolds: revision 1 (team/api = base + own
// layer) is on site, imported into the embedded edge registry. Revision 2
// adds team/worker = the same base + its own layer, and its incremental
// export leaves out every blob revision 1 had, the base included. The
// import links the base from where the site holds it (team/api) into
// team/worker: it writes only worker's own bytes, and without the edge
// registry's link the import could not complete at all (the base is
// neither in the file nor in team/worker).
func TestImportLinksBlobsTheSiteHolds(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	layer := func() v1.Layer {
		ls, _ := testimage.Image(t, "linux/amd64", 1, 256<<10).Layers()
		return ls[0]
	}
	image := func(ls ...v1.Layer) v1.Image {
		img, err := mutate.AppendLayers(testimage.Image(t, "linux/amd64", 0, 0), ls...)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	put := func(ref string, img v1.Image) {
		r, _ := name.ParseReference(up.Repo(ref), name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}
	base, workerOwn := layer(), layer()
	put("team/api:1", image(base, layer()))
	worker := image(base, workerOwn)
	put("team/worker:1", worker)

	w := &world{up: up, repo: t.TempDir(), edgeGit: t.TempDir(), bundles: "fleet/apps-bundles"}
	git(t, w.repo, "init", "-q", "-b", "main")
	git(t, w.repo, "remote", "add", "origin", "https://git.example.com/fleet/apps.git")
	git(t, w.edgeGit, "init", "-q", "--bare")
	w.sha1 = bundleRev(t, w, up.Repo("team/api:1"))
	w.sha2 = bundleRev(t, w, up.Repo("team/api:1"), up.Repo("team/worker:1"))

	edge := edgeregistry.Start(t, edgeregistry.Options{})
	c := edge.Credentials()
	importFile := func(file string, linkAnywhere bool) (*sneakernet.ImportResult, error) {
		return sneakernet.Import(context.Background(), sneakernet.ImportOptions{
			File: file, Registry: edge.Host, GitDir: w.edgeGit,
			RemoteOptions: []registryclient.Option{registryclient.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password}),
				registryclient.WithMountAnywhere(linkAnywhere)},
		})
	}
	full, _ := w.export(t, w.sha1, "")
	if _, err := importFile(full, true); err != nil {
		t.Fatal(err)
	}
	inc, _ := w.export(t, w.sha2, w.sha1)

	// Without the link the base is missing: the import fails, and
	// touches nothing it cannot finish.
	if _, err := importFile(inc, false); err == nil {
		t.Fatal("import without linking succeeded although the base is in neither the file nor team/worker: the test does not test linking")
	}
	res, err := importFile(inc, true)
	if err != nil {
		t.Fatal(err)
	}
	wm, _ := worker.Manifest()
	own := wm.Config.Size + wm.Layers[1].Size
	t.Logf("import wrote %d blob bytes, linked %d blobs (%d bytes)", res.Stats.BytesWritten, res.Stats.BlobsMounted, res.Stats.BytesSkipped)
	if res.Stats.BytesWritten != own || res.Stats.BlobsMounted < 1 {
		t.Fatalf("import wrote %d blob bytes and linked %d blobs, want worker's own %d bytes and the base linked", res.Stats.BytesWritten, res.Stats.BlobsMounted, own)
	}
	p := registryclient.NewPresence(edge.Host, registryclient.WithInsecure(true), registryclient.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password}))
	br, _ := imageref.BundleRepository("https://git.example.com/fleet/apps.git")
	rep, err := bundle.CheckComplete(context.Background(), p, bundle.Placement{BundleRepo: br, ImageRepo: imageref.Ref.EdgeRepository, CheckTags: true}, w.sha2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() {
		t.Fatalf("revision 2 incomplete after import: %v", rep.Missing)
	}
}
