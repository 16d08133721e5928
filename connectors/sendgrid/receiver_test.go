package sendgrid

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/connectortest"
)

// The official vector of test_vectors.md §1 (sendgrid-go's eventwebhook_test.go).
const (
	vectorKey       = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
	vectorSignature = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
	vectorTimestamp = "1600112502"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testKey is a P-256 key pair standing in for SendGrid's, with a receiver
// that trusts it.
type testKey struct {
	priv *ecdsa.PrivateKey
	recv *Receiver
}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKeyBase64(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(ReceiverConfig{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, recv: r}
}

func (k testKey) sign(t testing.TB) connectortest.SignFunc {
	return func(h http.Header, body []byte, at time.Time) (http.Header, []byte) {
		ts := strconv.FormatInt(at.Unix(), 10)
		sig, err := SignWithKey(k.priv, body, ts)
		if err != nil {
			t.Fatal(err)
		}
		h.Set(WebhookTimestampHeader, ts)
		h.Set(WebhookSignatureHeader, sig)
		return h, body
	}
}

func fixtures(t testing.TB) []connectortest.Fixture {
	return []connectortest.Fixture{
		connectortest.Load(t, "webhook_events", "testdata/webhook_events.json", http.Header{}),
		connectortest.Load(t, "webhook_signed_payload", "testdata/webhook_signed_payload.bin", http.Header{}),
	}
}

func TestConformance(t *testing.T) {
	k := newTestKey(t)
	connectortest.Run(t, connectortest.Case{
		Receiver:  k.recv,
		Sign:      k.sign(t),
		Tolerance: DefaultWebhookTolerance,
		Fixtures:  fixtures(t),
	})
}

func FuzzNormalize(f *testing.F) {
	connectortest.Fuzz(f, newTestKey(f).recv, fixtures(f))
}

func TestOfficialVector(t *testing.T) {
	t.Parallel()
	r, err := NewReceiver(ReceiverConfig{PublicKey: vectorKey})
	if err != nil {
		t.Fatal(err)
	}
	payload := readFile(t, "testdata/webhook_signed_payload.bin")
	if !bytes.HasSuffix(payload, []byte("\r\n")) || len(payload) != 327 {
		t.Fatalf("payload is %d bytes; it must be the exact 327 bytes ending in CRLF", len(payload))
	}
	signedAt := time.Unix(1600112502, 0)
	tests := []struct {
		name      string
		body      []byte
		sig, ts   string
		now       time.Time
		want      error
		wantExact bool
	}{
		{"verifies near its timestamp", payload, vectorSignature, vectorTimestamp, signedAt.Add(3 * time.Second), nil, true},
		{"verifies at the edge of the tolerance", payload, vectorSignature, vectorTimestamp, signedAt.Add(DefaultWebhookTolerance), nil, true},
		{"stale far from it", payload, vectorSignature, vectorTimestamp, signedAt.Add(24 * time.Hour), connectors.ErrStale, true},
		{"stale when far in the future", payload, vectorSignature, vectorTimestamp, signedAt.Add(-time.Hour), connectors.ErrStale, true},
		{"CRLF stripped", bytes.TrimSuffix(payload, []byte("\r\n")), vectorSignature, vectorTimestamp, signedAt, connectors.ErrSignature, true},
		{"other timestamp", payload, vectorSignature, "1600112503", signedAt, connectors.ErrSignature, true},
		{"corrupt signature", payload, vectorSignature + "causing failure", vectorTimestamp, signedAt, connectors.ErrSignature, true},
		{"timestamp not a number", payload, vectorSignature, "invalid timestamp", signedAt, connectors.ErrSignature, true},
		{"missing timestamp", payload, vectorSignature, "", signedAt, connectors.ErrSignature, true},
		{"missing signature", payload, "", vectorTimestamp, signedAt, connectors.ErrSignature, true},
		{"signature not DER", payload, base64.StdEncoding.EncodeToString([]byte("nope")), vectorTimestamp, signedAt, connectors.ErrSignature, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.sig != "" {
				h.Set(WebhookSignatureHeader, tc.sig)
			}
			if tc.ts != "" {
				h.Set(WebhookTimestampHeader, tc.ts)
			}
			err := r.Verify(h, tc.body, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewReceiverRejectsBadKeys(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	vecDER, _ := base64.StdEncoding.DecodeString(vectorKey)
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"empty", "", false},
		{"blank", "  \n", false},
		{"not base64", "not a key!", false},
		{"base64 of garbage", base64.StdEncoding.EncodeToString([]byte("garbage")), false},
		{"RSA key (the SDK helper would panic)", base64.StdEncoding.EncodeToString(rsaDER), false},
		{"P-384 key", base64.StdEncoding.EncodeToString(p384DER), false},
		{"the official key", vectorKey, true},
		{"the official key with surrounding whitespace", "\n " + vectorKey + " \n", true},
		{"the official key as PEM", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: vecDER})), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReceiver(ReceiverConfig{PublicKey: tc.key})
			if tc.ok != (err == nil) || tc.ok != (r != nil) {
				t.Fatalf("NewReceiver = %v, %v; want ok=%v", r, err, tc.ok)
			}
		})
	}
}

func normalize(t *testing.T, body string) ([]behavior.Record, []error, error) {
	t.Helper()
	r, err := NewReceiver(ReceiverConfig{PublicKey: vectorKey})
	if err != nil {
		t.Fatal(err)
	}
	return r.NormalizeBatch(http.Header{}, []byte(body))
}

func TestNormalizeEvents(t *testing.T) {
	t.Parallel()
	const base = `"email":"ann@example.com","timestamp":1700000000,"sg_message_id":"14c5d75ce93dfd64b469abc.filterdrecv-1.0"`
	tests := []struct {
		name  string
		event string
		check func(t *testing.T, r behavior.Record)
	}{
		{"custom args link the event to our send", `{"event":"click",` + base + `,"sg_event_id":"e1","url":"https://shop/p/1","nudge_send_id":"snd_42","nudge_rule":"cart-abandonment","nudge_step":"2","category":"cart"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.EmailClicked)
			want(t, r.URL, "https://shop/p/1")
			want(t, r.Ref(behavior.RefSendID), "snd_42")
			want(t, r.Ref(behavior.RefRuleID), "cart-abandonment")
			want(t, r.Ref(behavior.RefStep), "2")
			want(t, r.Ref(behavior.RefMessageID), "14c5d75ce93dfd64b469abc")
			want(t, r.Ref(RefSGMessageID), "14c5d75ce93dfd64b469abc.filterdrecv-1.0")
			want(t, r.Ref(behavior.RefEventID), "e1")
			want(t, strings.Join(r.Attrs[AttrCategories].([]string), ","), "cart")
			want(t, r.At, time.Unix(1700000000, 0).UTC())
		}},
		{"category array, numeric step", `{"event":"open",` + base + `,"sg_event_id":"e2","category":["a","b"],"nudge_step":3,"sg_machine_open":true}`, func(t *testing.T, r behavior.Record) {
			want(t, strings.Join(r.Attrs[AttrCategories].([]string), ","), "a,b")
			want(t, r.Ref(behavior.RefStep), "3")
			want(t, r.Ref(behavior.RefMachineOpen), "true")
		}},
		{"human open", `{"event":"open",` + base + `,"sg_event_id":"e3","sg_machine_open":false}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Ref(behavior.RefMachineOpen), "")
		}},
		{"hard bounce is permanent", `{"event":"bounce",` + base + `,"sg_event_id":"e4","type":"bounce","reason":"550 no such user"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.EmailBounced)
			want(t, r.Attrs[behavior.AttrPermanent], any(true))
			want(t, r.Attrs[behavior.AttrReason], any("550 no such user"))
			reason, ok := r.Suppresses()
			want(t, reason, behavior.SuppressBounced)
			want(t, ok, true)
		}},
		{"blocked is not permanent", `{"event":"bounce",` + base + `,"sg_event_id":"e5","type":"blocked"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Attrs[behavior.AttrPermanent], any(false))
			_, ok := r.Suppresses()
			want(t, ok, false)
		}},
		{"dropped for a bounced address is permanent", `{"event":"dropped",` + base + `,"sg_event_id":"e6","reason":"Bounced Address"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.EmailDropped)
			want(t, r.Attrs[behavior.AttrPermanent], any(true))
		}},
		{"dropped for spam content is not", `{"event":"dropped",` + base + `,"sg_event_id":"e7","reason":"Spam Content"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Attrs[behavior.AttrPermanent], any(false))
		}},
		{"group unsubscribe", `{"event":"group_unsubscribe",` + base + `,"sg_event_id":"e8","asm_group_id":10}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.Unsubscribed)
			want(t, r.Attrs[AttrASMGroupID], any(int64(10)))
		}},
		{"group resubscribe", `{"event":"group_resubscribe",` + base + `,"sg_event_id":"e9","asm_group_id":10}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.Resubscribed)
		}},
		{"spam report", `{"event":"spamreport",` + base + `,"sg_event_id":"e10"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.SpamReported)
		}},
		{"deferred with numeric attempt", `{"event":"deferred",` + base + `,"sg_event_id":"e11","attempt":5,"response":"421 later"}`, func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.EmailDeferred)
			want(t, r.Attrs["attempt"], any("5"))
		}},
		{"no sg_event_id falls back to the event bytes", `{"event":"delivered",` + base + `}`, func(t *testing.T, r behavior.Record) {
			want(t, r.ID, behavior.DeriveID("sendgrid", "event-bytes", `{"event":"delivered",`+base+`}`))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, skipped, err := normalize(t, "["+tc.event+"]")
			if err != nil || len(skipped) > 0 || len(recs) != 1 {
				t.Fatalf("NormalizeBatch = %d records, skipped %v, %v", len(recs), skipped, err)
			}
			tc.check(t, recs[0])
		})
	}
}

func want[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestNormalizeBatches(t *testing.T) {
	t.Parallel()
	const good = `{"event":"delivered","email":"a@example.com","timestamp":1700000000,"sg_event_id":"g1"}`
	const good2 = `{"event":"open","email":"b@example.com","timestamp":1700000001,"sg_event_id":"g2"}`
	const processed = `{"event":"processed","email":"a@example.com","timestamp":1700000000,"sg_event_id":"p1"}`
	tests := []struct {
		name        string
		body        string
		wantRecs    int
		wantSkipped int
		wantErr     error
	}{
		{"garbage event skipped, rest kept", "[" + good + `,42,{"event":"open","timestamp":"soon","email":"x@example.com"},{"email":"x@example.com"},` + good2 + "]", 2, 3, nil},
		{"duplicate event ids keep the first", "[" + good + "," + good + "]", 1, 0, nil},
		{"only unused events", "[" + processed + `,{"event":"something_new","email":"a@example.com","timestamp":1}]`, 0, 0, connectors.ErrIgnored},
		{"unused and garbage", "[" + processed + ",[]]", 0, 1, connectors.ErrIgnored},
		{"empty batch", "[]", 0, 0, connectors.ErrIgnored},
		{"only garbage", `[1,"x",null,{"event":"open"}]`, 0, 4, connectors.ErrMalformed},
		{"not an array", good, 0, 0, connectors.ErrMalformed},
		{"not json", "<xml/>", 0, 0, connectors.ErrMalformed},
		{"null", "null", 0, 0, connectors.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, skipped, err := normalize(t, tc.body)
			if len(recs) != tc.wantRecs || len(skipped) != tc.wantSkipped || !errors.Is(err, tc.wantErr) && (tc.wantErr != nil || err != nil) {
				t.Fatalf("NormalizeBatch = %d records, skipped %v, err %v; want %d, %d, %v", len(recs), skipped, err, tc.wantRecs, tc.wantSkipped, tc.wantErr)
			}
			for _, s := range skipped {
				if !errors.Is(s, connectors.ErrMalformed) {
					t.Errorf("skipped error %v does not wrap ErrMalformed", s)
				}
			}
		})
	}
}

func TestRedeliveryDedupes(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	body := readFile(t, "testdata/webhook_events.json")
	var first []string
	for i := range 5 {
		at := time.Unix(1700000000+int64(i)*600, 0)
		h, b := k.sign(t)(http.Header{}, body, at)
		if err := k.recv.Verify(h, b, at); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		recs, err := k.recv.Normalize(h, b)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		if i == 0 {
			first = ids
		} else if strings.Join(ids, ",") != strings.Join(first, ",") {
			t.Fatalf("delivery %d ids %v, want %v", i, ids, first)
		}
	}
}

func TestSample(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, ev := range SampleEventTypes() {
		t.Run(ev, func(t *testing.T) {
			body, h, err := Sample(ev, "ann@example.com", now)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := SignWithKey(k.priv, body, h.Get(WebhookTimestampHeader))
			if err != nil {
				t.Fatal(err)
			}
			h.Set(WebhookSignatureHeader, sig)
			if err := k.recv.Verify(h, body, now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			recs, err := k.recv.Normalize(h, body)
			if err != nil || len(recs) != 1 {
				t.Fatalf("Normalize = %d records, %v", len(recs), err)
			}
			want(t, recs[0].Kind, whKinds[ev])
			want(t, recs[0].Email, "ann@example.com")
			want(t, recs[0].At, now)
			want(t, len(recs[0].Ref(behavior.RefMessageID)), 22)
		})
	}
	for _, ev := range []string{"open", "click", "delivered", "bounce", "unsubscribe", "spamreport", "dropped"} {
		if _, _, err := Sample(ev, "", now); err != nil {
			t.Errorf("Sample(%q): %v", ev, err)
		}
	}
	if _, _, err := Sample("processed", "", now); err == nil {
		t.Error("Sample(processed) succeeded; it yields no record")
	}
}

func TestSignWithKeyNoKey(t *testing.T) {
	t.Parallel()
	if _, err := SignWithKey(nil, []byte("x"), "1"); err == nil {
		t.Fatal("SignWithKey(nil) succeeded")
	}
}

// FuzzVerify checks that no header values make Verify panic or accept a
// body under a signature that is not SendGrid's.
func FuzzVerify(f *testing.F) {
	f.Add(vectorSignature, vectorTimestamp)
	f.Add(vectorSignature+"causing failure", vectorTimestamp)
	f.Add("MAYCAQACAQA=", vectorTimestamp) // DER {0, 0}
	f.Add("", "")
	f.Add("====", "-1")
	r, err := NewReceiver(ReceiverConfig{PublicKey: vectorKey})
	if err != nil {
		f.Fatal(err)
	}
	payload := readFile(f, "testdata/webhook_signed_payload.bin")
	now := time.Unix(1600112502, 0)
	f.Fuzz(func(t *testing.T, sig, ts string) {
		h := http.Header{}
		h.Set(WebhookSignatureHeader, sig)
		h.Set(WebhookTimestampHeader, ts)
		err := r.Verify(h, payload, now)
		if err == nil {
			if ts != vectorTimestamp {
				t.Fatalf("Verify accepted timestamp %q", ts)
			}
			return
		}
		if !errors.Is(err, connectors.ErrSignature) && !errors.Is(err, connectors.ErrStale) {
			t.Fatalf("Verify = %v, want ErrSignature or ErrStale", err)
		}
	})
}

func TestXMessageID(t *testing.T) {
	t.Parallel()
	tests := []struct{ sg, smtp, want string }{
		{"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0", "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>", "LRzXl_NHStOGhQ4kofSm_A"},
		{"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0", "", "LRzXl_NHStOGhQ4kofSm_A"},
		{"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "<14c5d75ce93.dfd.64b469@ismtpd-555>", "14c5d75ce93.dfd.64b469"},
		{"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "<unrelated@host>", "14c5d75ce93"},
		{"nodots", "", "nodots"},
	}
	for _, tc := range tests {
		if got := whXMessageID(tc.sg, tc.smtp); got != tc.want {
			t.Errorf("whXMessageID(%q, %q) = %q, want %q", tc.sg, tc.smtp, got, tc.want)
		}
	}
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	sec1, _ := x509.MarshalECPrivateKey(k.priv)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k.priv)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"SEC 1 PEM", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})), true},
		{"PKCS 8 PEM", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})), true},
		{"SEC 1 base64", base64.StdEncoding.EncodeToString(sec1), true},
		{"PKCS 8 base64", base64.StdEncoding.EncodeToString(pkcs8), true},
		{"RSA", base64.StdEncoding.EncodeToString(rsa8), false},
		{"garbage", "garbage!", false},
		{"empty", "", false},
		{"bad PEM", "-----BEGIN nothing", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			priv, err := ParsePrivateKey(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("ParsePrivateKey = %v; want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			// The parsed key must sign what the receiver of the pair verifies.
			sig, err := SignWithKey(priv, []byte("[]"), "1700000000")
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{WebhookSignatureHeader: {sig}, WebhookTimestampHeader: {"1700000000"}}
			if err := k.recv.Verify(h, []byte("[]"), time.Unix(1700000000, 0)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}
