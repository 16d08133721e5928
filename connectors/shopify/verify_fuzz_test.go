package shopify

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/connectors"
)

// FuzzVerify feeds arbitrary bodies and X-Shopify-Hmac-Sha256 values to
// Verify: it never panics, accepts only the exact HMAC of the body under
// the current or previous secret, and fails with ErrSignature otherwise.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"id":1}`), "")
	f.Add([]byte(`{"id":1}`), "not base64 ***")
	f.Add([]byte{}, Sign("fuzz-secret", []byte{}))
	f.Add([]byte(`{"id":1}`), Sign("fuzz-old", []byte(`{"id":1}`)))
	f.Add([]byte("\xff\xfe"), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	r := New(Config{StoreID: "main", Secret: "fuzz-secret", PreviousSecret: "fuzz-old"})
	f.Fuzz(func(t *testing.T, body []byte, mac string) {
		h := http.Header{}
		h.Set(HeaderHmac, mac)
		err := r.Verify(h, body, time.Now())
		// Surrounding whitespace is ignored (HTTP strips it anyway);
		// nothing else but the canonical base64 digest is accepted.
		trimmed := strings.TrimSpace(mac)
		good := trimmed == Sign("fuzz-secret", body) || trimmed == Sign("fuzz-old", body)
		switch {
		case err == nil && !good:
			t.Fatalf("Verify accepted %q for %q", mac, body)
		case err != nil && good:
			t.Fatalf("Verify rejected the genuine HMAC: %v", err)
		case err != nil && !errors.Is(err, connectors.ErrSignature):
			t.Fatalf("Verify error %v does not wrap ErrSignature", err)
		}
	})
}
