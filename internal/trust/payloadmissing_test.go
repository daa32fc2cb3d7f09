package trust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestVerifyPayloadMissing: a signature manifest whose first signature
// names a payload the source lacks still verifies by its second one, and
// one whose only payload is missing is refused as malformed (untrusted,
// with the reason), not retried as a link failure for ever.
func TestVerifyPayloadMissing(t *testing.T) {
	priv, pub := keyPair(t, "pw")
	signer, err := LoadSigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePublicKey("a", pub)
	if err != nil {
		t.Fatal(err)
	}
	subject := v1.Descriptor{MediaType: "application/vnd.oci.image.index.v1+json", Digest: digestOf("index"), Size: 5}
	sig, err := signer.Sign("registry.example.com/b", subject)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(sig.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	ghost := m.Layers[0]
	ghost.Digest = digestOf("absent payload")
	m.Layers = append([]v1.Descriptor{ghost}, m.Layers...)
	two, _ := json.Marshal(m)
	fetch := func(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error) {
		b, ok := sig.Blobs[d.Digest]
		if !ok {
			return nil, fmt.Errorf("%w: blob %s", ErrPayloadNotFound, d.Digest)
		}
		return b, nil
	}
	if _, err := Verify(context.Background(), subject.Digest, two, []Key{key}, fetch); err != nil {
		t.Fatalf("a missing payload before a good signature: %v", err)
	}
	m.Layers = m.Layers[:1]
	one, _ := json.Marshal(m)
	if _, err := Verify(context.Background(), subject.Digest, one, []Key{key}, fetch); !errors.Is(err, ErrMalformed) {
		t.Fatalf("only payload missing: err = %v, want ErrMalformed", err)
	}
}
