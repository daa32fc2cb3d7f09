package charts_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/ballast-dev/ballast/internal/helmrepo"
)

// TestMetadataFieldsAreHelms: the edge's Helm repository (which imports no
// Helm) refuses chart metadata with fields Helm's index loader does not
// know, as Helm would refuse the whole index.yaml. Every field of Helm's
// chart.Metadata, set, must still be accepted there.
func TestMetadataFieldsAreHelms(t *testing.T) {
	var m chart.Metadata
	fill(reflect.ValueOf(&m).Elem())
	m.Name, m.Version = "demo", "1.0.0"
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := helmrepo.Metadata(raw); err != nil {
		t.Errorf("Helm's own metadata with every field set: %v\n%s", err, raw)
	}
}

// fill sets every field of v to a non-zero value of its type.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		v.SetMapIndex(k, e)
	case reflect.Interface:
		v.Set(reflect.ValueOf("x"))
	}
}
