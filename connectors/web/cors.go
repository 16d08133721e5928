package web

import (
	"net/http"
	"strings"
)

// origins is the CORS allow-list of tracking.allowed_origins.
type origins struct {
	any   bool
	exact map[string]bool
}

func newOrigins(list []string) origins {
	o := origins{exact: map[string]bool{}}
	for _, s := range list {
		s = normOrigin(s)
		if s == "*" {
			o.any = true
			continue
		}
		if s != "" {
			o.exact[s] = true
		}
	}
	return o
}

// normOrigin lower-cases an origin and drops a trailing slash, so
// "https://Shop.example/" in the config matches the browser's
// "https://shop.example".
func normOrigin(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "/")
}

// allowed reports whether a request from origin may be answered. Requests
// without an Origin header (servers, mobile SDKs, same-origin GETs) are
// not cross-origin browser requests and pass.
func (o origins) allowed(origin string) bool {
	if origin == "" {
		return true
	}
	return o.any || o.exact[normOrigin(origin)]
}

// setHeaders adds the CORS answer for an allowed origin. The origin is
// reflected rather than "*" so that caches keyed on Vary: Origin stay
// correct; credentials are never allowed because the write key travels in
// the body or the Authorization header, not in cookies.
func (o origins) setHeaders(h http.Header, origin string) {
	h.Add("Vary", "Origin")
	if origin == "" || !o.allowed(origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
}

func setPreflight(h http.Header) {
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Content-Encoding")
	h.Set("Access-Control-Max-Age", "86400")
}
