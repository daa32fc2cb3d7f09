package lfs

import (
	"errors"
	"strings"
	"testing"
)

const oidA = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"

func TestParsePointer(t *testing.T) {
	v := "version https://git-lfs.github.com/spec/v1\n"
	for _, tc := range []struct {
		name, in string
		want     Pointer
		err      string // "" ok; "not" ErrNotPointer; else substring
	}{
		{"ok", v + "oid sha256:" + oidA + "\nsize 12345\n", Pointer{oidA, 12345}, ""},
		{"old spec name", "version https://hawser.github.com/spec/v1\noid sha256:" + oidA + "\nsize 0\n", Pointer{oidA, 0}, ""},
		{"unknown key kept out", v + "foo bar\noid sha256:" + oidA + "\nsize 1\n", Pointer{oidA, 1}, ""},
		{"plain file", "kind: ConfigMap\n", Pointer{}, "not"},
		{"empty", "", Pointer{}, "not"},
		{"too big", v + strings.Repeat("x", MaxPointerSize), Pointer{}, "not"},
		{"no final newline", v + "oid sha256:" + oidA + "\nsize 1", Pointer{}, "newline"},
		{"unknown version", "version https://example.com/v9\noid sha256:" + oidA + "\nsize 1\n", Pointer{}, "spec version"},
		{"upper hex", v + "oid sha256:" + strings.ToUpper(oidA) + "\nsize 1\n", Pointer{}, "oid"},
		{"short oid", v + "oid sha256:abc\nsize 1\n", Pointer{}, "oid"},
		{"sha1", v + "oid sha1:" + oidA[:40] + "\nsize 1\n", Pointer{}, "sha256"},
		{"negative size", v + "oid sha256:" + oidA + "\nsize -1\n", Pointer{}, "size"},
		{"leading zero", v + "oid sha256:" + oidA + "\nsize 01\n", Pointer{}, "size"},
		{"huge size", v + "oid sha256:" + oidA + "\nsize 99999999999999999999\n", Pointer{}, "range"},
		{"order", v + "size 1\noid sha256:" + oidA + "\n", Pointer{}, "order"},
		{"repeat", v + "oid sha256:" + oidA + "\noid sha256:" + oidA + "\nsize 1\n", Pointer{}, "order"},
		{"no size", v + "oid sha256:" + oidA + "\n", Pointer{}, "required"},
		{"extension", v + "ext-0-foo sha256:" + oidA + "\noid sha256:" + oidA + "\nsize 1\n", Pointer{}, "extension"},
		{"bad line", v + "oid\nsize 1\n", Pointer{}, "key value"},
		{"crlf", "version https://git-lfs.github.com/spec/v1\r\noid sha256:" + oidA + "\r\nsize 1\r\n", Pointer{}, "spec version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePointer([]byte(tc.in))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err == "not" && !errors.Is(err, ErrNotPointer):
				t.Fatalf("error %v, want ErrNotPointer", err)
			case tc.err != "" && tc.err != "not" && (err == nil || errors.Is(err, ErrNotPointer) || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if err == nil {
				if again, err := ParsePointer([]byte(got.String())); err != nil || again != got {
					t.Fatalf("round trip: %+v %v", again, err)
				}
			}
		})
	}
}

func FuzzParsePointer(f *testing.F) {
	f.Add([]byte(Pointer{oidA, 5}.String()))
	f.Add([]byte("version https://git-lfs.github.com/spec/v1\noid sha256:x\nsize 1\n"))
	f.Add([]byte("kind: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePointer(b)
		if err != nil {
			return
		}
		if !IsOID(p.OID) || p.Size < 0 {
			t.Fatalf("accepted invalid pointer %+v", p)
		}
		if again, err := ParsePointer([]byte(p.String())); err != nil || again != p {
			t.Fatalf("round trip of %+v: %+v %v", p, again, err)
		}
	})
}

func TestParseBatchRequest(t *testing.T) {
	obj := `{"oid":"` + oidA + `","size":12}`
	for _, tc := range []struct {
		name, in string
		kind     string // "" ok, "400", "422"
	}{
		{"download", `{"operation":"download","transfers":["basic"],"ref":{"name":"refs/heads/main"},"objects":[` + obj + `],"hash_algo":"sha256"}`, ""},
		{"no transfers", `{"operation":"download","objects":[` + obj + `]}`, ""},
		{"upload parses", `{"operation":"upload","objects":[]}`, ""},
		{"not json", `operation=download`, "400"},
		{"array", `[]`, "400"},
		{"trailing", `{"operation":"download","objects":[]} {}`, "400"},
		{"no operation", `{"objects":[]}`, "400"},
		{"bad operation", `{"operation":"delete","objects":[]}`, "400"},
		{"bad oid", `{"operation":"download","objects":[{"oid":"../../etc/passwd","size":1}]}`, "422"},
		{"no size", `{"operation":"download","objects":[{"oid":"` + oidA + `"}]}`, "422"},
		{"negative size", `{"operation":"download","objects":[{"oid":"` + oidA + `","size":-1}]}`, "422"},
		{"float size", `{"operation":"download","objects":[{"oid":"` + oidA + `","size":1.5}]}`, "422"},
		{"string size", `{"operation":"download","objects":[{"oid":"` + oidA + `","size":"1"}]}`, "422"},
		{"sha512", `{"operation":"download","objects":[],"hash_algo":"sha512"}`, "422"},
		{"tus only", `{"operation":"download","transfers":["tus"],"objects":[]}`, "422"},
		{"too many", `{"operation":"download","objects":[` + strings.Repeat(obj+",", MaxBatchObjects) + obj + `]}`, "422"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBatchRequest([]byte(tc.in))
			var bre *BadRequestError
			var ve *ValidationError
			switch tc.kind {
			case "":
				if err != nil {
					t.Fatal(err)
				}
			case "400":
				if !errors.As(err, &bre) {
					t.Fatalf("error %v, want a BadRequestError", err)
				}
			case "422":
				if !errors.As(err, &ve) {
					t.Fatalf("error %v, want a ValidationError", err)
				}
			}
		})
	}
}

func FuzzParseBatchRequest(f *testing.F) {
	f.Add([]byte(`{"operation":"download","transfers":["basic"],"objects":[{"oid":"` + oidA + `","size":12}]}`))
	f.Add([]byte(`{"operation":"upload","objects":[{"oid":"x","size":-1}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseBatchRequest(b)
		if err != nil {
			var bre *BadRequestError
			var ve *ValidationError
			if !errors.As(err, &bre) && !errors.As(err, &ve) {
				t.Fatalf("untyped error %T %v", err, err)
			}
			return
		}
		for _, o := range req.Objects {
			if !IsOID(o.OID) || o.Size < 0 {
				t.Fatalf("accepted %+v", o)
			}
		}
	})
}

func TestParseLsTree(t *testing.T) {
	in := "100644 blob " + oidA[:40] + "     129\tdeploy/cm.yaml\x00" +
		"040000 tree " + oidA[:40] + "       -\tdeploy\x00" +
		"100644 blob " + oidA[:40] + "       7\tname with\ttab\x00"
	es, err := parseLsTree([]byte(in))
	if err != nil || len(es) != 3 || es[0].size != 129 || es[0].path != "deploy/cm.yaml" || es[1].size != -1 || es[2].path != "name with\ttab" {
		t.Fatalf("%+v %v", es, err)
	}
	for _, bad := range []string{"100644 blob x 1\tp", "100644 blob x\tp\x00", "100644 blob x -5\tp\x00", "garbage\x00"} {
		if _, err := parseLsTree([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseLsTree(f *testing.F) {
	f.Add([]byte("100644 blob " + oidA[:40] + "     129\tdeploy/cm.yaml\x00"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseLsTree(b) })
}

func TestParseCatFileBatch(t *testing.T) {
	in := oidA[:40] + " blob 3\nabc\n" + strings.Repeat("b", 40) + " blob 0\n\n"
	got, err := parseCatFileBatch([]byte(in))
	if err != nil || string(got[oidA[:40]]) != "abc" || len(got) != 2 {
		t.Fatalf("%q %v", got, err)
	}
	for _, bad := range []string{oidA[:40] + " blob 3\nab", oidA[:40] + " missing\n", "x blob 99999\n", oidA[:40] + " blob 3\nabcX"} {
		if _, err := parseCatFileBatch([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseCatFileBatch(f *testing.F) {
	f.Add([]byte(oidA[:40] + " blob 3\nabc\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseCatFileBatch(b) })
}
