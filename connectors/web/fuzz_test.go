package web

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seedCalls adds every Segment example in testdata as a fuzz seed.
func seedCalls(f *testing.F) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "segment", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"anonymousId":1e400,"properties":{"price":1e400,"quantity":-1,"products":[null,1,{"price":"x"}]}}`))
	f.Add([]byte(`{"userId":"a@b.c","traits":{"nudge_id":"n1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`))
	f.Add([]byte(`{"anonymousId":"a","timestamp":"9999999999999","sentAt":"1970-01-01T00:00:00Z"}`))
}

// fuzzCall checks that one call type never panics and that whatever it
// accepts becomes a record the store would take.
func fuzzCall(f *testing.F, typ string) {
	seedCalls(f)
	n := normalizer{storeID: "main", currency: "USD", tokenSecret: testSecret}
	received := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseMessage(body, typ)
		if err != nil {
			return
		}
		r, err := n.record(m, received)
		if err != nil {
			return
		}
		if !r.Kind.Valid() {
			t.Fatalf("invalid kind %q", r.Kind)
		}
		if len(r.Identities()) == 0 {
			t.Fatal("record without identity")
		}
		if r.ID == "" || r.At.IsZero() || !timeInRange(r.At) {
			t.Fatalf("bad id or time: %q %s", r.ID, r.At)
		}
		if r.Email != "" && !looksLikeEmail(r.Email) {
			t.Fatalf("implausible email %q", r.Email)
		}
		if r.Seconds < 0 || r.Seconds > 86400 {
			t.Fatalf("seconds %v", r.Seconds)
		}
		again, err := n.record(m, received)
		if err != nil || again.ID != r.ID {
			t.Fatalf("normalizing twice differs: %v %q %q", err, again.ID, r.ID)
		}
	})
}

func FuzzTrack(f *testing.F)    { fuzzCall(f, TypeTrack) }
func FuzzIdentify(f *testing.F) { fuzzCall(f, TypeIdentify) }
func FuzzPage(f *testing.F)     { fuzzCall(f, TypePage) }
func FuzzScreen(f *testing.F)   { fuzzCall(f, TypeScreen) }
func FuzzAlias(f *testing.F)    { fuzzCall(f, TypeAlias) }
func FuzzGroup(f *testing.F)    { fuzzCall(f, TypeGroup) }

func FuzzBatch(f *testing.F) {
	seedCalls(f)
	f.Add([]byte(`{"batch":[{"type":"page","anonymousId":"a"},{"type":"nope"},3,null],"context":{"ip":"1.2.3.4"},"sentAt":"x"}`))
	n := normalizer{storeID: "main", currency: "USD", tokenSecret: testSecret}
	received := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, msgs, rejected, err := ParseBatch(body, MaxBatchBytes)
		if err != nil {
			return
		}
		if len(msgs)+len(rejected) != len(b.Batch) {
			t.Fatalf("%d calls, %d parsed + %d rejected", len(b.Batch), len(msgs), len(rejected))
		}
		for _, m := range msgs {
			if r, err := n.record(m, received); err == nil && !r.Kind.Valid() {
				t.Fatalf("invalid kind %q", r.Kind)
			}
		}
	})
}

func FuzzVerifyIdentity(f *testing.F) {
	f.Add(SignIdentity(testSecret, "a@example.com", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
	f.Add("n1.")
	f.Add("")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, tok string) {
		email, err := VerifyIdentity(testSecret, tok, now)
		if err == nil && !looksLikeEmail(email) {
			t.Fatalf("accepted %q", email)
		}
	})
}
