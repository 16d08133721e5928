package connectortest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
)

// toy is a minimal receiver with a deliberate flaw, to show that the
// suite passes a correct receiver and catches broken ones.
type toy struct {
	secret string
	flaw   string
	calls  *atomic.Int64
}

func (toy) Name() string { return "toy" }

func (r toy) Verify(h http.Header, body []byte, _ time.Time) error {
	if r.flaw == "accept-all" {
		return nil
	}
	got, err := hex.DecodeString(h.Get("X-Toy-Signature"))
	if err != nil || len(got) == 0 {
		return fmt.Errorf("toy: %w", connectors.ErrSignature)
	}
	if !hmac.Equal(got, toyMAC(r.secret, body)) {
		return fmt.Errorf("toy: %w", connectors.ErrSignature)
	}
	return nil
}

func (r toy) Normalize(h http.Header, body []byte) ([]behavior.Record, error) {
	var p struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		At    string `json:"at"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		if r.flaw == "panic" {
			panic("toy: cannot parse")
		}
		return nil, fmt.Errorf("toy: %v: %w", err, connectors.ErrMalformed)
	}
	at, err := time.Parse(time.RFC3339, p.At)
	if err != nil {
		return nil, fmt.Errorf("toy: at: %w", connectors.ErrMalformed)
	}
	if p.Email == "" || p.ID == "" {
		return nil, fmt.Errorf("toy: %w", connectors.ErrIgnored)
	}
	rec := behavior.Record{
		ID: behavior.DeriveID("toy", p.ID), Kind: behavior.CustomerUpdated, Source: "toy", At: at.UTC(), Email: p.Email,
	}
	switch r.flaw {
	case "random-id":
		rec.ID = fmt.Sprint(r.calls.Add(1))
	case "no-identity":
		rec.Email = ""
	case "bad-kind":
		rec.Kind = "cart_abandoned"
	}
	return []behavior.Record{rec}, nil
}

func toyMAC(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

func toyCase(flaw string) Case {
	return Case{
		Receiver: toy{secret: "s3cret", flaw: flaw, calls: new(atomic.Int64)},
		Sign: func(h http.Header, body []byte, _ time.Time) (http.Header, []byte) {
			h.Set("X-Toy-Signature", hex.EncodeToString(toyMAC("s3cret", body)))
			return h, body
		},
		Fixtures: []Fixture{
			{Name: "toy_person", Header: http.Header{}, Body: []byte(`{"id":"p1","email":"ann@example.com","at":"2024-04-02T09:13:11-05:00"}`)},
			{Name: "toy_nobody", Header: http.Header{}, Body: []byte(`{"id":"p2","at":"2024-04-02T09:13:11-05:00"}`), WantErr: connectors.ErrIgnored},
		},
		GoldenDir: "testdata/golden",
	}
}

func TestRunPassesCorrectReceiver(t *testing.T) {
	t.Parallel()
	Run(t, toyCase(""))
}

// TestHelperFlawedReceiver is run by TestRunCatchesFlaws in a child
// process, so that its expected failure does not fail this package.
func TestHelperFlawedReceiver(t *testing.T) {
	flaw := os.Getenv("CONNECTORTEST_FLAW")
	if flaw == "" {
		t.Skip("only run as a child of TestRunCatchesFlaws")
	}
	Run(t, toyCase(flaw))
}

func TestRunCatchesFlaws(t *testing.T) {
	t.Parallel()
	cases := []struct{ flaw, want string }{
		{"accept-all", "want ErrSignature"},
		{"random-id", "not deterministic"},
		{"no-identity", "no identity"},
		{"bad-kind", "invalid kind"},
		{"panic", "panicked"},
	}
	for _, tc := range cases {
		t.Run(tc.flaw, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFlawedReceiver$", "-test.v")
			cmd.Env = append(os.Environ(), "CONNECTORTEST_FLAW="+tc.flaw)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("flawed receiver passed the suite (err %v):\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	msgs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func TestCheckRecords(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := behavior.Record{ID: "a", Kind: behavior.OrderPlaced, Source: "toy", At: at, Email: "a@b.c", Value: 100, Currency: "USD"}
	cases := []struct {
		name string
		mut  func(r *behavior.Record)
		want string // "" = no complaint
	}{
		{"valid", func(*behavior.Record) {}, ""},
		{"empty id", func(r *behavior.Record) { r.ID = "" }, "empty id"},
		{"bad kind", func(r *behavior.Record) { r.Kind = "nope" }, "invalid kind"},
		{"zero time", func(r *behavior.Record) { r.At = time.Time{} }, "zero At"},
		{"wrong source", func(r *behavior.Record) { r.Source = "other" }, "Source"},
		{"no identity", func(r *behavior.Record) { r.Email = "" }, "no identity"},
		{"catalog needs no identity", func(r *behavior.Record) { r.Email, r.Kind = "", behavior.ProductUpdated }, ""},
		{"money without currency", func(r *behavior.Record) { r.Currency = "" }, "no currency"},
		{"negative quantity", func(r *behavior.Record) { r.Items = []behavior.Item{{Quantity: -1}} }, "negative quantity"},
	}
	for _, tc := range cases {
		rec := ok
		tc.mut(&rec)
		r := &recorder{TB: t}
		CheckRecords(r, "toy", nil, []behavior.Record{rec})
		got := strings.Join(r.msgs, "; ")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: complaints %q, want %q", tc.name, got, tc.want)
		}
	}
	r := &recorder{TB: t}
	CheckRecords(r, "toy", nil, []behavior.Record{ok, ok})
	if len(r.msgs) == 0 || !strings.Contains(r.msgs[0], "repeated") {
		t.Errorf("duplicate ids within a delivery not reported: %q", r.msgs)
	}
}

func TestGarbleNeverReturnsInput(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id": 123, "email": "a@b.c", "items": [1, 2]}`)
	for i, g := range Garble(body) {
		if string(g) == string(body) {
			t.Errorf("variant %d equals the input", i)
		}
	}
	if got := string(quoteNumbers([]byte(`{"a": 12, "b": "x", "c":-3.5}`))); got != `{"a": "12", "b": "x", "c":"-3.5"}` {
		t.Errorf("quoteNumbers = %s", got)
	}
}
