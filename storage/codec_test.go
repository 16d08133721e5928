package storage

import (
	stdjson "encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nudge-email/nudge/behavior"
)

// The store encodes and decodes its own values with goccy/go-json, for
// speed (bench/sched: due steps/s +16 %), and everything else in nudge,
// outside input included, goes through encoding/json. These tests hold
// the two to the same bytes for every kind of value the store keeps, so
// what a store file holds does not depend on which codec wrote it.

// sameEncoding checks that both codecs encode v alike and that the bytes
// decode alike with both into a new value of v's type.
func sameEncoding(t *testing.T, v any) {
	t.Helper()
	want, errStd := stdjson.Marshal(v)
	got, errGo := json.Marshal(v)
	if (errStd != nil) != (errGo != nil) {
		t.Fatalf("encoding/json error %v, go-json error %v", errStd, errGo)
	}
	if errStd != nil {
		return
	}
	if string(got) != string(want) {
		t.Fatalf("go-json encodes\n%s\nencoding/json\n%s", got, want)
	}
	typ := reflect.TypeOf(v)
	a, b := reflect.New(typ), reflect.New(typ)
	if err := stdjson.Unmarshal(want, a.Interface()); err != nil {
		t.Fatalf("encoding/json decode: %v", err)
	}
	if err := json.Unmarshal(want, b.Interface()); err != nil {
		t.Fatalf("go-json decode: %v", err)
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		t.Fatalf("decoded differently:\n%#v\n%#v", a.Elem().Interface(), b.Elem().Interface())
	}
}

func TestCodecMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 29, 1, 2, 3, 456789000, time.FixedZone("CET", 3600))
	avail := int64(-3)
	rec := behavior.Record{
		ID: "r1", Kind: behavior.OrderPlaced, Source: "shopify", Store: "main", At: at, ReceivedAt: at.UTC(),
		Email: "Ann+x@Example.com", CustomerID: "42", Value: -1999, Currency: "EUR",
		Items: []behavior.Item{
			{ProductID: "p1", Title: `<b>Mug & "Cup"</b> ☕`, Price: 1299, Quantity: 2, Available: &avail},
			{ProductID: "p2", Title: "bad \xff utf-8 \u2028 line sep", URL: "https://x.example/p2?a=1&b=2"},
		},
		Query: "tea\x00cup", Seconds: 12.5,
		Refs:  map[string]string{"z": "1", "a": "2", "é": "3"},
		Attrs: map[string]any{"n": 1e21, "small": 1e-7, "neg": math.Copysign(0, -1), "list": []any{"a", 1.5, true, nil}, "obj": map[string]any{"k": "v"}},
	}
	tests := []struct {
		name string
		v    any
	}{
		{"record", rec},
		{"empty record", behavior.Record{}},
		{"profile", Profile{
			ID: "p1", Email: "ann@example.com", Identities: []behavior.Identity{{Type: behavior.IdentEmail, Value: "ann@example.com"}},
			Counts: map[behavior.Kind]int{behavior.OrderPlaced: 2}, LastAt: map[behavior.Kind]time.Time{behavior.OrderPlaced: at},
			Scores: map[string]float64{"churn": 0.1234567890123, "clv": 1e300}, FirstSeen: at, UpdatedAt: at,
		}},
		{"send", Send{ID: "s1", Status: SendSent, Message: MessageJSON(`{"to":{"email":"a@b.c"},"html":"<p>hi</p>"}`), Engagement: map[string]int{"opened": 1}, Meta: map[string]string{"k": "v"}, CreatedAt: at}},
		{"send without message", Send{ID: "s2", Status: SendPending}},
		{"journey", Journey{ID: "j1", Rule: "r", StartedAt: at, Trace: []TraceEntry{{At: at, Step: 1, Action: "queued", Detail: "send s1"}}}},
		{"job", Job{ID: math.MaxUint64, Kind: "step", Payload: []byte(`{"journey_id":"j1"}`), DueAt: at, State: JobRunning}},
		{"decision", Decision{At: at, Rule: "r", RecordID: "x", Started: true, Reason: "started"}},
		{"stored record", storedRecord{R: rec, P: "p1", D: "d1"}},
		{"stored product (embedded Product)", storedProduct{
			Product:      Product{ProductID: "p1", Title: "Tea & <Cups>", Price: 1299, Available: &avail, UpdatedAt: at, Unverified: true},
			FromCatalog:  true,
			VariantStock: map[string]int64{"v2": 3, "v1": -1}, LocationStock: map[string]int64{"v1@l1": 0},
		}},
		{"stored delivery (embedded Delivery)", storedDelivery{Delivery: Delivery{ID: "d1", Body: []byte("\x00\xff{")}, BodySeq: 7, BodyFmt: 1}},
		{"suppression", Suppression{Email: "ann@example.com", Reason: "bounced", At: at}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { sameEncoding(t, tc.v) })
	}
}

// FuzzCodecMatchesEncodingJSON feeds arbitrary strings and numbers into a
// record (webhook text ends up in records: titles, queries, attributes).
func FuzzCodecMatchesEncodingJSON(f *testing.F) {
	f.Add("Mug <b>&</b>", "query", int64(1299), 1.5)
	f.Add("\xff\xfe", "\u2028\u2029", int64(-1), 1e21)
	f.Add("", "\x00", int64(math.MaxInt64), math.SmallestNonzeroFloat64)
	f.Add("nan", "", int64(0), math.NaN()) // both must refuse it
	f.Add("inf", "", int64(math.MinInt64), math.Inf(-1))
	f.Fuzz(func(t *testing.T, s1, s2 string, n int64, x float64) {
		r := behavior.Record{
			ID: s1, Kind: behavior.Kind(s2), At: time.Unix(0, n%(1<<62)).UTC(), Email: s2, Value: n, Seconds: x,
			Items: []behavior.Item{{Title: s1, URL: s2, Price: n}},
			Refs:  map[string]string{s1: s2, s2: s1},
			Attrs: map[string]any{s1: x, s2: []any{s1, x, n != 0}},
		}
		sameEncoding(t, r)
	})
}
