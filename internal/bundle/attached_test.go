package bundle

import (
	"strings"
	"testing"
)

func TestAttachedEntryRoundTrip(t *testing.T) {
	s := newStore()
	d, _ := s.multiArch(t, "b", "x")
	sigD, _ := s.multiArch(t, "c", "y")
	img := Image{Ref: mustRef(t, "docker.io/library/nginx:1"), Descriptor: d}
	sig := Image{Ref: mustRef(t, "docker.io/library/nginx:sha256-"+d.Digest.Hex+".sig@"+sigD.Digest.String()), Descriptor: sigD,
		Attached: &Attachment{Kind: AttachedSignature, Subject: d.Digest}}
	raw, _, err := Build(Bundle{Revision: rev, Images: []Image{sig, img}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var found *Attachment
	for _, im := range b.Images {
		if im.Attached != nil {
			found = im.Attached
			if want := "signature of " + d.Digest.String(); !strings.HasPrefix(im.Name(), want) {
				t.Errorf("name %q, want it to start with %q", im.Name(), want)
			}
		}
	}
	if found == nil || found.Kind != AttachedSignature || found.Subject != d.Digest {
		t.Fatalf("attachment %+v after the round trip", found)
	}
	if _, _, err := Build(Bundle{Revision: rev, Images: []Image{{Ref: sig.Ref, Descriptor: sigD, Attached: &Attachment{Kind: "bogus", Subject: d.Digest}}}}); err == nil {
		t.Fatal("Build accepted an unknown attachment kind")
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"io.ballast.attached.kind":"sig"`, `"io.ballast.attached.kind":"nope"`, "want sig, att, sbom or referrer"},
		{`"io.ballast.attached.subject":"` + d.Digest.String() + `"`, `"io.ballast.attached.subject":"sha256:12"`, AnnotationAttachedSubject},
		{`"io.ballast.attached.kind":"sig",`, ``, "go together"},
	} {
		bad := strings.Replace(string(raw), tc.from, tc.to, 1)
		if bad == string(raw) {
			t.Fatalf("%q not in the index", tc.from)
		}
		if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse with %q: err = %v, want one containing %q", tc.to, err, tc.want)
		}
	}
}
