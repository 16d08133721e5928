package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

//go:embed t.js
var scriptSource []byte

// scriptConfigMarker is replaced in t.js by the server's settings, so
// one plain script tag picks up require_consent without extra attributes.
const scriptConfigMarker = "/*NUDGE_CONFIG*/{}"

// scriptConfig is what t.js learns from the server.
type scriptConfig struct {
	RequireConsent bool   `json:"requireConsent"`
	Endpoint       string `json:"endpoint,omitempty"`
}

// script is t.js rendered once at startup, with its gzip form and ETag.
type script struct {
	plain, gz []byte
	etag      string
}

func newScript(cfg scriptConfig) (script, error) {
	if !bytes.Contains(scriptSource, []byte(scriptConfigMarker)) {
		return script{}, errors.New("t.js lacks its config marker")
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return script{}, err
	}
	plain := bytes.Replace(compactJS(scriptSource), []byte(scriptConfigMarker), js, 1)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		return script{}, err
	}
	sum := sha256.Sum256(plain)
	return script{plain: plain, gz: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}, nil
}

// compactJS drops indentation, blank lines and whole-line comments: the
// source stays readable in the repository while the served script keeps
// well under 5 KB gzipped. It relies on t.js having no multi-line strings
// or template literals, which TestScriptServed's browser run would catch.
func compactJS(src []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(src, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || bytes.HasPrefix(t, []byte("//")) || (bytes.HasPrefix(t, []byte("/*")) && bytes.HasSuffix(t, []byte("*/"))) {
			continue
		}
		out.Write(t)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// ScriptSize returns the size of the served t.js, plain and gzipped.
func (h *Handler) ScriptSize() (plain, gzipped int) { return len(h.script.plain), len(h.script.gz) }

// serveScript answers GET /t.js. The script may be cached for an hour and
// revalidated by ETag, so a fix reaches every storefront within the hour
// without a version in the tag.
func (h *Handler) serveScript(c *gin.Context) {
	hd := c.Writer.Header()
	hd.Set("Content-Type", "application/javascript; charset=utf-8")
	hd.Set("Cache-Control", "public, max-age=3600, stale-while-revalidate=86400")
	hd.Set("ETag", h.script.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	// Storefronts that isolate themselves (COEP) may still load it.
	hd.Set("Cross-Origin-Resource-Policy", "cross-origin")
	hd.Add("Vary", "Accept-Encoding")
	if match := c.GetHeader("If-None-Match"); match != "" && strings.Contains(match, h.script.etag) {
		c.Status(http.StatusNotModified)
		return
	}
	body := h.script.plain
	if acceptsGzip(c.GetHeader("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = h.script.gz
	}
	c.Status(http.StatusOK)
	if c.Request.Method == http.MethodHead {
		hd.Set("Content-Length", strconv.Itoa(len(body)))
		return
	}
	c.Writer.Write(body)
}

func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			v, ok := strings.CutPrefix(strings.ReplaceAll(q, " ", ""), "q=")
			if !ok {
				return true
			}
			f, err := strconv.ParseFloat(v, 64)
			return err == nil && f > 0
		}
	}
	return false
}
