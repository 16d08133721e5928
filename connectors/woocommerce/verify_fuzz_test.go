package woocommerce

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bodies and X-WC-Webhook-Signature values to
// Verify (and the ping check): it never panics and accepts only the exact
// HMAC of the body under the current or previous secret.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"id":1}`), "")
	f.Add([]byte("webhook_id=12"), "")
	f.Add([]byte(`{"id":1}`), "%%%")
	f.Add([]byte(`{"id":1}`), Sign("fuzz-secret", []byte(`{"id":1}`)))
	r := New(Config{StoreID: "woo", Secret: "fuzz-secret", PreviousSecret: "fuzz-old"})
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		h := http.Header{}
		h.Set("X-WC-Webhook-Signature", sig)
		_ = r.IsPing(h, body)
		err := r.Verify(h, body, time.Now())
		// Surrounding whitespace is ignored (HTTP strips it anyway);
		// nothing else but the canonical base64 digest is accepted.
		trimmed := strings.TrimSpace(sig)
		good := trimmed == Sign("fuzz-secret", body) || trimmed == Sign("fuzz-old", body)
		if err == nil && !good {
			t.Fatalf("Verify accepted %q for %q", sig, body)
		}
		if err != nil && good {
			t.Fatalf("Verify rejected the genuine signature: %v", err)
		}
	})
}
