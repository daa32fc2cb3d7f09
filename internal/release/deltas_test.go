package release_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

func pushLayered(t *testing.T, ref string, layers ...layergen.Layer) {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(l.Blob, l.Desc.MediaType)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// Bundling two revisions with --delta-bases: the first has no base (every
// layer goes whole, "no-base"); the second publishes a delta for its one
// changed layer against the first revision's bundle (its git first
// parent), and the delta index tagged <sha>.deltas lists it.
func TestRunPublishesDeltas(t *testing.T) {
	gitBin := realtest.LookPath(t, "git", "apt-get install git")
	up := regserver.Start(t, regserver.Options{})
	down := regserver.Start(t, regserver.Options{})
	shared := layergen.Compress(t, layergen.Tar([]layergen.File{{Name: "etc/os-release", Data: []byte("ID=test\n")}}), false)
	assets := layergen.Assets(t, 30)
	pushLayered(t, up.Repo("src/web:v1"), shared, layergen.Compress(t, assets.Old, false))
	newLayer := layergen.Compress(t, assets.New, false)
	pushLayered(t, up.Repo("src/web:v2"), shared, newLayer)

	repo := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command(gitBin, append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		cmd.Env = os.Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	git("init", "-q")
	ctx := context.Background()
	anon := registryclient.WithKeychain(authn.NewMultiKeychain())
	run := func(image string) *release.Result {
		t.Helper()
		git("commit", "-q", "--allow-empty", "-m", image)
		res, err := release.Run(ctx, release.Options{RepoDir: repo, Revision: "HEAD", To: down.Repo("fleet/bundles"),
			Config: &release.Config{ExtraImages: []string{image}}, RemoteOptions: []registryclient.Option{anon, registryclient.WithInsecure(true)},
			DeltaBases: release.DefaultDeltaBases})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := run(up.Repo("src/web:v1"))
	if d := first.Deltas; d == nil || d.Deltas != 0 || len(d.Bases) != 0 || d.Whole["no-base"] != 2 {
		t.Fatalf("first revision: %+v", first.Deltas)
	}
	second := run(up.Repo("src/web:v2"))
	d := second.Deltas
	if d == nil || d.Deltas != 1 || d.ChangedLayers != 1 || len(d.Bases) != 1 || d.Bases[0] != first.Revision || d.Index == "" {
		t.Fatalf("second revision: %+v", d)
	}
	if d.ChangedBytes != newLayer.Desc.Size || d.DeltaBytes*10 > d.ChangedBytes {
		t.Fatalf("second revision: %+v for a %d byte layer", d, newLayer.Desc.Size)
	}
	bundles, err := registryclient.New(down.Repo("fleet/bundles"), anon, registryclient.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	desc, raw, err := bundles.FetchRef(ctx, delta.IndexTag(second.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != d.Index {
		t.Fatalf("delta index %s, summary says %s", desc.Digest, d.Index)
	}
	es, err := delta.ParseIndex(raw, second.Revision)
	if err != nil || len(es) != 1 || es[0].Delta.Target.Digest != newLayer.Desc.Digest {
		t.Fatalf("delta index: %v %+v", err, es)
	}
	// Bundling the same revision again finds its deltas and computes none.
	again, err := release.Run(ctx, release.Options{RepoDir: repo, Revision: second.Revision, To: down.Repo("fleet/bundles"),
		Config: &release.Config{ExtraImages: []string{up.Repo("src/web:v2")}}, RemoteOptions: []registryclient.Option{anon, registryclient.WithInsecure(true)},
		DeltaBases: release.DefaultDeltaBases})
	if err != nil {
		t.Fatal(err)
	}
	if again.Deltas == nil || !again.Deltas.Present || again.Deltas.Index != d.Index || again.BundleDigest != second.BundleDigest {
		t.Fatalf("re-run: %+v", again.Deltas)
	}
}
