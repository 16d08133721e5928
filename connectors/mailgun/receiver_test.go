package mailgun

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/connectortest"
)

// The key and signature of test_vectors.md §2, which every fixture carries.
const (
	testKey       = "webhook-signing-key"
	fixtureTS     = 1529006854
	fixtureToken  = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
	fixtureSigHex = "44540250428cccadc671c773f2ca19be17eabdfce5075fc472d3730e51a11e4f"
)

func newReceiver(t testing.TB) *Receiver {
	t.Helper()
	r, err := NewReceiver(ReceiverConfig{SigningKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fixtures(t testing.TB) []connectortest.Fixture {
	t.Helper()
	paths, err := filepath.Glob("testdata/webhook_event_*.json")
	if err != nil || len(paths) < 9 {
		t.Fatalf("fixtures: %v (%d files)", err, len(paths))
	}
	var fx []connectortest.Fixture
	for _, p := range paths {
		if strings.HasSuffix(p, ".golden.json") {
			continue
		}
		f := connectortest.Load(t, strings.TrimSuffix(filepath.Base(p), ".json"), p, http.Header{})
		if strings.HasSuffix(p, "_accepted.json") {
			f.WantErr = connectors.ErrIgnored
		}
		fx = append(fx, f)
	}
	return fx
}

func signBody(t testing.TB) connectortest.SignFunc {
	return func(h http.Header, body []byte, at time.Time) (http.Header, []byte) {
		// Every fixture carries the same documented sample token; real
		// deliveries never share one, and the receiver's replay check
		// rejects a token reused with other event data. Give each body a
		// token of its own.
		sum := sha256.Sum256(body)
		body = setSignature(t, body, "token", hex.EncodeToString(sum[:25]))
		b, err := SignBody(testKey, body, at)
		if err != nil {
			t.Fatal(err)
		}
		return h, b
	}
}

// setSignature replaces one field of a body's signature object.
func setSignature(t testing.TB, body []byte, field string, value any) []byte {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	sig, _ := top["signature"].(map[string]any)
	if value == nil {
		delete(top, "signature")
	} else {
		sig[field] = value
	}
	b, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, connectortest.Case{
		Receiver: newReceiver(t),
		Sign:     signBody(t),
		// Mailgun signs timestamp+token, not the body: tamper with the token.
		Tamper: func(h http.Header, body []byte) (http.Header, []byte) {
			return h, setSignature(t, body, "token", fixtureToken+"x")
		},
		Unsign: func(h http.Header, body []byte) (http.Header, []byte) {
			return h, setSignature(t, body, "signature", nil)
		},
		Now:       time.Unix(fixtureTS+30, 0).UTC(),
		Tolerance: DefaultWebhookTolerance,
		Fixtures:  fixtures(t),
	})
}

func FuzzNormalize(f *testing.F) {
	connectortest.Fuzz(f, newReceiver(f), fixtures(f))
}

func TestVectors(t *testing.T) {
	t.Parallel()
	for _, v := range []struct{ ts, token, want string }{
		{"123456789", "token", "3ce8f010058ab80b8345d3513acc9027d34a00190ae8e4b4161e7636f68321f8"},
		{"1529006854", fixtureToken, fixtureSigHex},
	} {
		if got := Sign(testKey, v.ts, v.token); got != v.want {
			t.Errorf("Sign(%s, %s) = %s, want %s", v.ts, v.token, got, v.want)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	fixture, err := os.ReadFile("testdata/webhook_event_clicked.json")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(fixtureTS, 0)
	row1 := []byte(`{"signature":{"timestamp":"123456789","token":"token","signature":"3ce8f010058ab80b8345d3513acc9027d34a00190ae8e4b4161e7636f68321f8"},"event-data":{}}`)
	tests := []struct {
		name string
		r    *Receiver
		body []byte
		now  time.Time
		want error
	}{
		{"fixture as delivered", r, fixture, at.Add(time.Minute), nil},
		{"vector row 1", r, row1, time.Unix(123456789, 0), nil},
		{"numeric timestamp", r, bytes.Replace(fixture, []byte(`"1529006854"`), []byte(`1529006854`), 1), at, nil},
		{"upper-case hex", r, bytes.Replace(fixture, []byte(fixtureSigHex), []byte(strings.ToUpper(fixtureSigHex)), 1), at, nil},
		{"stale", r, fixture, at.Add(DefaultWebhookTolerance + time.Second), connectors.ErrStale},
		{"stale and tampered is stale", r, setSignature(t, fixture, "token", "other"), at.Add(time.Hour), connectors.ErrStale},
		{"far future", r, fixture, at.Add(-time.Hour), connectors.ErrStale},
		{"tampered token", r, setSignature(t, fixture, "token", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de1"), at, connectors.ErrSignature},
		{"tampered timestamp", r, setSignature(t, fixture, "timestamp", "1529006855"), at, connectors.ErrSignature},
		{"SDK negative vector", r, setSignature(t, fixture, "signature", "626164736967e6174757265"), at, connectors.ErrSignature},
		{"signature not hex", r, setSignature(t, fixture, "signature", "zz"), at, connectors.ErrSignature},
		{"wrong key", mustReceiver(t, "other-key"), fixture, at, connectors.ErrSignature},
		{"no signature object", r, setSignature(t, fixture, "", nil), at, connectors.ErrSignature},
		{"signature is a string", r, []byte(`{"signature":"x"}`), at, connectors.ErrSignature},
		{"empty token", r, setSignature(t, fixture, "token", ""), at, connectors.ErrSignature},
		{"timestamp not a number", r, setSignature(t, fixture, "timestamp", "yesterday"), at, connectors.ErrSignature},
		{"body not JSON", r, []byte("timestamp=1&token=x&signature=y"), at, connectors.ErrMalformed},
		{"body empty", r, nil, at, connectors.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Verify(http.Header{}, tc.body, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func mustReceiver(t *testing.T, key string) *Receiver {
	t.Helper()
	r, err := NewReceiver(ReceiverConfig{SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewReceiverNeedsKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"", "  "} {
		if r, err := NewReceiver(ReceiverConfig{SigningKey: k}); err == nil || r != nil {
			t.Errorf("NewReceiver(%q) = %v, %v; want an error", k, r, err)
		}
	}
}

func want[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func eventBody(eventData string) []byte {
	return []byte(`{"signature":{"timestamp":"1","token":"t","signature":"00"},"event-data":` + eventData + `}`)
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	const base = `"id":"abc","timestamp":1377075564.094891,"recipient":"ann@example.com","message":{"headers":{"message-id":"<20130821.1@mg.example.com>"}}`
	tests := []struct {
		name  string
		data  string
		check func(t *testing.T, r behavior.Record)
	}{
		{"send id from user variables", `{"event":"clicked",` + base + `,"url":"https://shop/p","user-variables":{"nudge_send_id":"snd_42","nudge_rule":"winback","nudge_step":2},"tags":["winback","x"]}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.EmailClicked)
			want(t, r.Ref(behavior.RefSendID), "snd_42")
			want(t, r.Ref(behavior.RefRuleID), "winback")
			want(t, r.Ref(behavior.RefStep), "2")
			want(t, r.Ref(behavior.RefMessageID), "20130821.1@mg.example.com")
			want(t, r.URL, "https://shop/p")
			want(t, strings.Join(r.Attrs[AttrTags].([]string), ","), "winback,x")
		}},
		{"timestamp keeps its microseconds exactly", `{"event":"delivered",` + base + `}`, func(t *testing.T, r behavior.Record) {
			want(t, r.At, time.Date(2013, 8, 21, 8, 59, 24, 94891000, time.UTC))
			want(t, r.ID, behavior.DeriveID("mailgun", "abc", "1377075564.094891"))
		}},
		{"same id on another day is another event", `{"event":"delivered","id":"abc","timestamp":1377161964.094891,"recipient":"ann@example.com"}`, func(t *testing.T, r behavior.Record) {
			if r.ID == behavior.DeriveID("mailgun", "abc", "1377075564.094891") {
				t.Error("ids unique within a day only must not collide across days")
			}
		}},
		{"permanent failure suppresses", `{"event":"failed","severity":"permanent","reason":"bounce",` + base + `,"delivery-status":{"code":550,"description":"No such user"}}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.EmailBounced)
			want(t, r.Attrs[behavior.AttrPermanent], any(true))
			want(t, r.Attrs[behavior.AttrReason], any("bounce"))
			want(t, r.Attrs["code"], any("550"))
			_, ok := r.Suppresses()
			want(t, ok, true)
		}},
		{"temporary failure is a deferral", `{"event":"failed","severity":"temporary",` + base + `}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.EmailDeferred)
			_, ok := r.Suppresses()
			want(t, ok, false)
		}},
		{"bot open is a machine open", `{"event":"opened",` + base + `,"client-info":{"client-type":"browser","bot":"apple"}}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Ref(behavior.RefMachineOpen), "true")
			want(t, r.Attrs[AttrBot], any("apple"))
		}},
		{"robot client open is a machine open", `{"event":"opened",` + base + `,"client-info":{"client-type":"robot","bot":""}}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Ref(behavior.RefMachineOpen), "true")
		}},
		{"human open", `{"event":"opened",` + base + `,"client-info":{"client-type":"browser","bot":""}}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Ref(behavior.RefMachineOpen), "")
		}},
		{"complaint", `{"event":"complained",` + base + `}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.SpamReported)
		}},
		{"integer timestamp, no id", `{"event":"unsubscribed","timestamp":1377075564,"recipient":"ann@example.com"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.Unsubscribed)
			want(t, r.At, time.Unix(1377075564, 0).UTC())
			want(t, r.ID, behavior.DeriveID("mailgun", "event-bytes", `{"event":"unsubscribed","timestamp":1377075564,"recipient":"ann@example.com"}`))
		}},
	}
	r := newReceiver(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := r.Normalize(http.Header{}, eventBody(tc.data))
			if err != nil || len(recs) != 1 {
				t.Fatalf("Normalize = %d records, %v", len(recs), err)
			}
			tc.check(t, recs[0])
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"accepted", eventBody(`{"event":"accepted","timestamp":1,"recipient":"a@example.com"}`), connectors.ErrIgnored},
		{"stored", eventBody(`{"event":"stored","timestamp":1,"recipient":"a@example.com"}`), connectors.ErrIgnored},
		{"no event-data", []byte(`{"signature":{}}`), connectors.ErrMalformed},
		{"event-data is a list", eventBody(`[]`), connectors.ErrMalformed},
		{"no event", eventBody(`{"timestamp":1,"recipient":"a@example.com"}`), connectors.ErrMalformed},
		{"no recipient", eventBody(`{"event":"opened","timestamp":1}`), connectors.ErrMalformed},
		{"exponent timestamp", eventBody(`{"event":"opened","timestamp":1.3e9,"recipient":"a@example.com"}`), connectors.ErrMalformed},
		{"negative timestamp", eventBody(`{"event":"opened","timestamp":-5,"recipient":"a@example.com"}`), connectors.ErrMalformed},
		{"huge timestamp", eventBody(`{"event":"opened","timestamp":99999999999999999999,"recipient":"a@example.com"}`), connectors.ErrMalformed},
		{"not json", []byte("event=opened"), connectors.ErrMalformed},
	}
	r := newReceiver(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Normalize(http.Header{}, tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("Normalize = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRedeliveryDedupes(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	body, err := os.ReadFile("testdata/webhook_event_opened.json")
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i := range 5 {
		// Each retry carries a new signature timestamp and token.
		at := time.Unix(fixtureTS+int64(i)*3600, 0)
		b, err := SignBody(testKey, setSignature(t, body, "token", strings.Repeat("ab", 25)[:49]+string(rune('0'+i))), at)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(http.Header{}, b, at); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		recs, err := r.Normalize(http.Header{}, b)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = recs[0].ID
		} else if recs[0].ID != first {
			t.Fatalf("delivery %d: id %s, want %s", i, recs[0].ID, first)
		}
	}
}

func TestSample(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	kinds := map[string]behavior.Kind{
		"delivered": behavior.EmailDelivered, "opened": behavior.EmailOpened, "clicked": behavior.EmailClicked,
		"unsubscribed": behavior.Unsubscribed, "complained": behavior.SpamReported,
		"permanent_fail": behavior.EmailBounced, "temporary_fail": behavior.EmailDeferred, "failed": behavior.EmailBounced,
	}
	for _, ev := range SampleEventTypes() {
		t.Run(ev, func(t *testing.T) {
			body, _, err := Sample(ev, "ann@example.com", now)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Verify(http.Header{}, body, now); !errors.Is(err, connectors.ErrSignature) {
				t.Fatalf("unsigned sample: Verify = %v, want ErrSignature", err)
			}
			body, err = SignBody(testKey, body, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Verify(http.Header{}, body, now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			recs, err := r.Normalize(http.Header{}, body)
			if err != nil || len(recs) != 1 {
				t.Fatalf("Normalize = %d records, %v", len(recs), err)
			}
			want(t, recs[0].Kind, kinds[ev])
			want(t, recs[0].Email, "ann@example.com")
			want(t, recs[0].At, now.Truncate(time.Microsecond))
			if !strings.HasSuffix(recs[0].Ref(behavior.RefMessageID), "@sample.mailgun.org") {
				t.Errorf("message id %q", recs[0].Ref(behavior.RefMessageID))
			}
		})
	}
	if _, _, err := Sample("accepted", "", now); err == nil {
		t.Error("Sample(accepted) succeeded; it yields no record")
	}
	if _, err := SignBody("", []byte("{}"), now); err == nil {
		t.Error("SignBody without a key succeeded")
	}
	if _, err := SignBody(testKey, []byte("[]"), now); err == nil {
		t.Error("SignBody of a non-object succeeded")
	}
}

// FuzzVerify checks that no body makes Verify panic, and that whatever it
// accepts carries the one valid signature.
func FuzzVerify(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.Body)
	}
	f.Add([]byte(`{"signature":{"timestamp":1529006854,"token":1,"signature":[]}}`))
	f.Add([]byte(`{"signature":null}`))
	r := newReceiver(f)
	now := time.Unix(fixtureTS, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		err := r.Verify(http.Header{}, body, now)
		if err == nil {
			if !bytes.Contains(bytes.ToLower(body), []byte(fixtureSigHex)) {
				t.Fatalf("Verify accepted %q", body)
			}
			return
		}
		if !errors.Is(err, connectors.ErrSignature) && !errors.Is(err, connectors.ErrStale) && !errors.Is(err, connectors.ErrMalformed) {
			t.Fatalf("Verify = %v", err)
		}
	})
}

// A captured delivery replayed with forged event-data inside the
// timestamp's tolerance is rejected; a true redelivery is accepted.
func TestVerifyRejectsReplayWithForgedEventData(t *testing.T) {
	t.Parallel()
	r, err := NewReceiver(ReceiverConfig{SigningKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	body, _, err := Sample("delivered", "ann@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	if body, err = SignBody("k", body, now); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(nil, body, now); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	if err := r.Verify(nil, body, now.Add(time.Minute)); err != nil {
		t.Fatalf("redelivery of the same body: %v", err)
	}
	forged := bytes.Replace(body, []byte(`"delivered"`), []byte(`"unsubscribed"`), 1)
	if bytes.Equal(forged, body) {
		t.Fatal("test did not change the event")
	}
	if err := r.Verify(nil, forged, now.Add(time.Minute)); !errors.Is(err, connectors.ErrSignature) {
		t.Fatalf("forged replay: %v, want ErrSignature", err)
	}
}
