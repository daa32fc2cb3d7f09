package transfer_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// TestStagedPrefixDamagedOnDisk: a byte of a blob's staged prefix flipped
// on disk, inside what the saved hash state covers (so the stage's own
// digest check passes): the target's check refuses the bytes, the stage is
// dropped and the blob fetched again, and the copy finishes; it must not
// fail on the same damaged stage for good.
func TestStagedPrefixDamagedOnDisk(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64"}, 1, 8<<20)
	root := pushIndex(t, up.Repo("flip"), "v1", idx)
	t.Run("oci layout", func(t *testing.T) {
		lay := must(layout.New(t.TempDir()))
		damagedStage(t, up, root, lay, func() { verifyLayout(t, lay, idx) })
	})
	t.Run("edge registry", func(t *testing.T) {
		edge := edgeregistry.Start(t, edgeregistry.Options{})
		c := edge.Credentials()
		dst := newRemote(t, edge.Host+"/docker.io/library/flip", registryclient.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password}))
		damagedStage(t, up, root, dst, func() { checkIndexAt(t, edge.Host+"/docker.io/library/flip", idx, nil) })
	})
}

func damagedStage(t *testing.T, up *regserver.Server, root v1.Descriptor, dst transfer.Target, verify func()) {
	staging := t.TempDir()
	ct := &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
	src := newRemote(t, up.Repo("flip"), registryclient.WithTransport(ct))

	ctx, cancel := context.WithCancel(context.Background())
	e1 := newEngine(t, transfer.WithStagingDir(staging), transfer.WithBandwidth(8<<20), transfer.WithProgress(func(ev transfer.Event) {
		if ev.Kind == transfer.BlobProgress && ev.Offset > 4<<20 {
			cancel()
		}
	}))
	if _, err := e1.Copy(ctx, transfer.Job{Src: src, Dst: dst, Root: root}); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	ents, _ := os.ReadDir(staging)
	if len(ents) != 1 {
		t.Fatalf("staged %d blobs, want 1", len(ents))
	}
	data := filepath.Join(staging, ents[0].Name(), "data")
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, 1000)
	b[0] ^= 0xff
	f.WriteAt(b, 1000)
	f.Close()

	for pass := 1; pass <= 2; pass++ {
		_, err := newEngine(t, transfer.WithStagingDir(staging)).Copy(context.Background(), transfer.Job{Src: src, Dst: dst, Root: root})
		if err == nil {
			break
		}
		if pass == 2 {
			t.Fatalf("the damaged stage fails every pass: %v", err)
		}
		t.Logf("pass %d: %v", pass, err)
	}
	verify()
}
