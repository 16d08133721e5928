// Package connectortest is the conformance suite every connectors.Receiver
// passes. A receiver's test builds a Case — the receiver, a way to sign a
// body the way the provider does, and its fixtures — and calls Run:
//
//	func TestConformance(t *testing.T) {
//		connectortest.Run(t, connectortest.Case{
//			Receiver: shopify.New(shopify.Config{StoreID: "main", Secret: "s"}),
//			Sign: func(h http.Header, body []byte, at time.Time) (http.Header, []byte) {
//				h.Set("X-Shopify-Hmac-Sha256", shopify.Sign("s", body))
//				return h, body
//			},
//			Fixtures: []connectortest.Fixture{
//				connectortest.Load(t, "checkouts_create", "testdata/checkouts_create.json",
//					http.Header{"X-Shopify-Topic": {"checkouts/create"}}),
//			},
//		})
//	}
//
// Run checks, for every fixture: the signed delivery verifies; a tampered
// body, a missing signature and garbage signature values fail with
// connectors.ErrSignature (or ErrStale); with Case.Tolerance set, a
// delivery signed too long ago fails with ErrStale; Normalize returns the
// records of the fixture's golden file (testdata/<name>.golden.json,
// rewritten by `go test -update`); Normalize is deterministic, so a
// redelivery yields the same record ids and dedupes; every record passes
// CheckRecords; and Normalize never panics on truncated or garbled
// versions of the body.
//
// Fuzz gives a receiver's FuzzNormalize the same invariants.
package connectortest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
)

// update is the conventional -update flag of golden-file tests. It is
// registered here, once, so every package using the suite shares it; a
// test package that imports connectortest must not define its own.
var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// Update reports whether the test binary was run with -update, for tests
// that keep golden files of their own beside the suite's.
func Update() bool { return *update }

// Fixture is one delivery as the provider sends it, before signing.
type Fixture struct {
	// Name names the subtests and the golden file
	// <Case.GoldenDir>/<Name>.golden.json.
	Name string
	// Header holds the delivery's unsigned headers (topic, event id …).
	Header http.Header
	// Body is the exact bytes delivered.
	Body []byte
	// WantErr, when set, is the error Normalize must return (checked with
	// errors.Is), e.g. connectors.ErrIgnored; such fixtures have no golden.
	WantErr error
}

// Load reads a fixture body from path, failing the test if it cannot.
func Load(t testing.TB, name, path string, h http.Header) Fixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("connectortest: load fixture %s: %v", name, err)
	}
	return Fixture{Name: name, Header: h, Body: b}
}

// SignFunc signs a delivery as the provider would at time at. It receives
// a copy of the fixture's headers and body and returns them signed; most
// providers only add a header, but body-signed ones (Mailgun) may return a
// new body.
type SignFunc func(h http.Header, body []byte, at time.Time) (http.Header, []byte)

// AlterFunc rewrites a signed delivery (see Case.Tamper and Case.Unsign).
type AlterFunc func(h http.Header, body []byte) (http.Header, []byte)

// Case describes one receiver to the suite.
type Case struct {
	// Receiver is the receiver under test, configured with the secret
	// Sign uses.
	Receiver connectors.Receiver
	// Sign signs a delivery. Required.
	Sign SignFunc
	// Unsign removes the signature from a signed delivery. By default the
	// headers Sign added are deleted, which suits header-signed providers.
	Unsign AlterFunc
	// Tamper changes a signed delivery so that its signature no longer
	// matches. By default one byte in the middle of the body is flipped;
	// providers whose signature does not cover the body bytes (Mailgun)
	// supply their own.
	Tamper AlterFunc
	// Now is when deliveries are signed and verified. Zero means a fixed
	// instant, so goldens do not depend on the clock.
	Now time.Time
	// Tolerance, when non-zero, is the receiver's signature time
	// tolerance: a delivery signed Tolerance+time.Minute before Now must
	// fail with connectors.ErrStale.
	Tolerance time.Duration
	// Fixtures are the deliveries to check. At least one is required.
	Fixtures []Fixture
	// GoldenDir holds the golden files; "testdata" when empty.
	GoldenDir string
	// NoIdentity lists the kinds whose records need no identity; nil
	// means DefaultNoIdentity.
	NoIdentity []behavior.Kind
}

// DefaultNoIdentity returns the kinds that describe the catalog, not a
// person, and so need no identity.
func DefaultNoIdentity() []behavior.Kind {
	return []behavior.Kind{behavior.ProductUpdated, behavior.PriceDropped, behavior.BackInStock}
}

// DefaultNow is the fixed instant Run signs and verifies at when Case.Now
// is zero, so that signed test deliveries do not change from run to run.
func DefaultNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// Run runs the conformance suite for c as subtests of t.
func Run(t *testing.T, c Case) {
	t.Helper()
	if c.Receiver == nil || c.Sign == nil || len(c.Fixtures) == 0 {
		t.Fatal("connectortest: Case needs Receiver, Sign and at least one Fixture")
	}
	if c.Now.IsZero() {
		c.Now = DefaultNow()
	}
	if c.GoldenDir == "" {
		c.GoldenDir = "testdata"
	}
	if c.NoIdentity == nil {
		c.NoIdentity = DefaultNoIdentity()
	}
	for _, fx := range c.Fixtures {
		t.Run(fx.Name, func(t *testing.T) {
			h, body := c.Sign(fx.Header.Clone(), bytes.Clone(fx.Body), c.Now)
			added := addedHeaders(fx.Header, h)

			t.Run("verify", func(t *testing.T) {
				if err := safeVerify(c.Receiver, h.Clone(), bytes.Clone(body), c.Now); err != nil {
					t.Fatalf("Verify(signed) = %v, want nil", err)
				}
			})
			t.Run("tampered", func(t *testing.T) {
				th, tb := tamper(c, h.Clone(), bytes.Clone(body))
				err := safeVerify(c.Receiver, th, tb, c.Now)
				if !errors.Is(err, connectors.ErrSignature) {
					t.Fatalf("Verify(tampered) = %v, want ErrSignature", err)
				}
			})
			t.Run("unsigned", func(t *testing.T) {
				uh, ub := h.Clone(), bytes.Clone(body)
				if c.Unsign != nil {
					uh, ub = c.Unsign(uh, ub)
				} else {
					for _, k := range added {
						uh.Del(k)
					}
				}
				err := safeVerify(c.Receiver, uh, ub, c.Now)
				if !errors.Is(err, connectors.ErrSignature) {
					t.Fatalf("Verify(unsigned) = %v, want ErrSignature", err)
				}
			})
			t.Run("garbage_signature", func(t *testing.T) {
				for _, k := range added {
					orig := h.Get(k)
					for _, v := range []string{"", "garbage", "====", orig[:len(orig)/2], orig + "x", strings.Repeat("A", 4096)} {
						gh := h.Clone()
						gh.Set(k, v)
						err := safeVerify(c.Receiver, gh, bytes.Clone(body), c.Now)
						if !errors.Is(err, connectors.ErrSignature) && !errors.Is(err, connectors.ErrStale) {
							t.Errorf("Verify with %s=%.40q = %v, want ErrSignature or ErrStale", k, v, err)
						}
					}
				}
			})
			if c.Tolerance > 0 {
				t.Run("stale", func(t *testing.T) {
					sh, sb := c.Sign(fx.Header.Clone(), bytes.Clone(fx.Body), c.Now.Add(-c.Tolerance-time.Minute))
					err := safeVerify(c.Receiver, sh, sb, c.Now)
					if !errors.Is(err, connectors.ErrStale) {
						t.Fatalf("Verify(signed %s too early) = %v, want ErrStale", c.Tolerance+time.Minute, err)
					}
				})
			}
			t.Run("normalize", func(t *testing.T) {
				recs, panicked, err := safeNormalize(c.Receiver, h.Clone(), bytes.Clone(body))
				if panicked != nil {
					t.Fatalf("Normalize panicked: %v", panicked)
				}
				if fx.WantErr != nil {
					if !errors.Is(err, fx.WantErr) {
						t.Fatalf("Normalize error = %v, want %v", err, fx.WantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Normalize: %v", err)
				}
				if len(recs) == 0 {
					t.Fatal("Normalize returned no records and no error; use ErrIgnored for deliveries that yield nothing")
				}
				CheckRecords(t, c.Receiver.Name(), c.NoIdentity, recs)
				again, _, err2 := safeNormalize(c.Receiver, h.Clone(), bytes.Clone(body))
				if err2 != nil || !reflect.DeepEqual(marshal(t, recs), marshal(t, again)) {
					t.Fatalf("Normalize is not deterministic: a redelivery would not dedupe (second error %v)", err2)
				}
				Golden(t, filepath.Join(c.GoldenDir, fx.Name+".golden.json"), recs)
			})
			t.Run("garbled", func(t *testing.T) {
				for i, g := range Garble(body) {
					recs, panicked, err := safeNormalize(c.Receiver, h.Clone(), g)
					if panicked != nil {
						t.Fatalf("Normalize panicked on garbled body #%d (%.60q): %v", i, g, panicked)
					}
					if err == nil {
						CheckRecords(t, c.Receiver.Name(), c.NoIdentity, recs)
					}
				}
			})
		})
	}
}

// Fuzz runs Normalize on fuzzed bodies under each fixture's headers,
// seeded with the fixtures and their garbled variants, and checks that it
// never panics and that whatever it accepts passes CheckRecords. Call it
// from a receiver's FuzzNormalize:
//
//	func FuzzNormalize(f *testing.F) { connectortest.Fuzz(f, New(cfg), fixtures(f)) }
func Fuzz(f *testing.F, r connectors.Receiver, fixtures []Fixture) {
	f.Helper()
	if len(fixtures) == 0 {
		f.Fatal("connectortest: Fuzz needs at least one fixture for its headers")
	}
	for i, fx := range fixtures {
		f.Add(uint8(i), fx.Body)
		for _, g := range Garble(fx.Body)[:4] {
			f.Add(uint8(i), g)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		fx := fixtures[int(which)%len(fixtures)]
		recs, panicked, err := safeNormalize(r, fx.Header.Clone(), body)
		if panicked != nil {
			t.Fatalf("Normalize panicked: %v", panicked)
		}
		if err == nil {
			CheckRecords(t, r.Name(), nil, recs)
		}
	})
}

// CheckRecords fails t unless every record is well formed: a non-empty id
// unique within the delivery, a valid kind, a non-zero time, Source equal
// to source, an identity unless its kind is in noIdentity (nil means
// DefaultNoIdentity), a currency wherever there is money, and no negative
// quantities.
func CheckRecords(t testing.TB, source string, noIdentity []behavior.Kind, recs []behavior.Record) {
	t.Helper()
	if noIdentity == nil {
		noIdentity = DefaultNoIdentity()
	}
	seen := map[string]bool{}
	for i, r := range recs {
		where := fmt.Sprintf("record %d (%s %s)", i, r.Kind, r.ID)
		if r.ID == "" {
			t.Errorf("%s: empty id", where)
		}
		if seen[r.ID] {
			t.Errorf("%s: id repeated within one delivery; add a distinguishing part to DeriveID", where)
		}
		seen[r.ID] = true
		if !r.Kind.Valid() {
			t.Errorf("%s: invalid kind %q", where, r.Kind)
		}
		if r.At.IsZero() {
			t.Errorf("%s: zero At", where)
		}
		if r.Source != source {
			t.Errorf("%s: Source = %q, want %q", where, r.Source, source)
		}
		if len(r.Identities()) == 0 && !kindIn(r.Kind, noIdentity) {
			t.Errorf("%s: no identity (email, customer id or anonymous id)", where)
		}
		money := r.Value != 0
		for j, it := range r.Items {
			if it.Quantity < 0 {
				t.Errorf("%s: item %d: negative quantity %d", where, j, it.Quantity)
			}
			money = money || it.Price != 0
		}
		if money && r.Currency == "" {
			t.Errorf("%s: carries money but no currency", where)
		}
	}
}

// Golden compares recs, as indented JSON, with the file at path, or
// rewrites the file when the test runs with -update.
func Golden(t testing.TB, path string, recs []behavior.Record) {
	t.Helper()
	got := marshal(t, recs)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("records differ from %s (run with -update if the change is intended):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// Garble returns truncated and corrupted variants of body for robustness
// checks: prefixes of several lengths, single-byte flips, structural
// characters swapped, and a few degenerate JSON documents.
func Garble(body []byte) [][]byte {
	out := [][]byte{
		nil, []byte("null"), []byte("{}"), []byte("[]"), []byte(`""`), []byte("0"),
		[]byte("\xff\xfe"), []byte(`{"id":null}`), []byte(`{"id":{}}`), []byte(`{"id":[1]}`),
	}
	n := len(body)
	for k := 1; k < 8; k++ {
		out = append(out, bytes.Clone(body[:n*k/8]))
	}
	if n > 0 {
		for _, pos := range []int{0, n / 5, n / 3, n / 2, 2 * n / 3, n - 1} {
			b := bytes.Clone(body)
			b[pos] ^= 0x20
			out = append(out, b)
		}
	}
	for _, rep := range [][2]string{
		{`"`, `'`}, {`:`, `,`}, {`}`, `]`}, {`null`, `{}`}, {`null`, `[]`}, {`null`, `"x"`},
		{`": "`, `": 1e999, "x": "`}, {`": "`, `": {}, "x": "`}, {`": "`, `": [], "x": "`},
		{`": "`, `": -1, "x": "`}, {`": [`, `": {"a":[`},
	} {
		if g := bytes.ReplaceAll(body, []byte(rep[0]), []byte(rep[1])); !bytes.Equal(g, body) {
			out = append(out, g)
		}
	}
	// Numbers turned into strings exercise the "id as number or string"
	// decoders.
	if g := quoteNumbers(body); !bytes.Equal(g, body) {
		out = append(out, g)
	}
	return out
}

// quoteNumbers wraps bare digits following ": " in quotes.
func quoteNumbers(body []byte) []byte {
	var b bytes.Buffer
	for i := 0; i < len(body); i++ {
		b.WriteByte(body[i])
		if body[i] == ':' {
			j := i + 1
			for j < len(body) && body[j] == ' ' {
				b.WriteByte(' ')
				j++
			}
			k := j
			for k < len(body) && (body[k] >= '0' && body[k] <= '9' || body[k] == '.' || body[k] == '-') {
				k++
			}
			if k > j {
				b.WriteByte('"')
				b.Write(body[j:k])
				b.WriteByte('"')
				i = k - 1
			} else {
				i = j - 1
			}
		}
	}
	return b.Bytes()
}

func tamper(c Case, h http.Header, body []byte) (http.Header, []byte) {
	if c.Tamper != nil {
		return c.Tamper(h, body)
	}
	if len(body) == 0 {
		return h, []byte("x")
	}
	body[len(body)/2] ^= 0x01
	return h, body
}

// addedHeaders lists the canonical header names Sign set or changed.
func addedHeaders(before, after http.Header) []string {
	var out []string
	for k, v := range after {
		if !reflect.DeepEqual(before.Values(k), v) {
			out = append(out, k)
		}
	}
	return out
}

func kindIn(k behavior.Kind, ks []behavior.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func safeVerify(r connectors.Receiver, h http.Header, body []byte, now time.Time) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("verify panicked: %v", p)
		}
	}()
	return r.Verify(h, body, now)
}

func safeNormalize(r connectors.Receiver, h http.Header, body []byte) (recs []behavior.Record, panicked any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	recs, err = r.Normalize(h, body)
	return recs, nil, err
}

func marshal(t testing.TB, recs []behavior.Record) []byte {
	t.Helper()
	if recs == nil {
		recs = []behavior.Record{}
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		t.Fatalf("marshal records: %v", err)
	}
	return append(b, '\n')
}

// lineDiff shows the first differing lines of two texts with a little
// context; enough to see what changed without a diff dependency.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl == gl {
			continue
		}
		fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		if shown++; shown == 10 {
			b.WriteString("  …\n")
			break
		}
	}
	return b.String()
}
