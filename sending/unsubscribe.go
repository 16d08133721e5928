package sending

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// Unsubscribe tokens are "<send id>.<mac>", the mac being a truncated
// HMAC-SHA256 of the send id and the recipient's address under
// TokenSecret. The address itself stays out of the URL (it would end up in
// access logs and click-tracking redirects); the send id finds it in the
// outbox, and the mac binds the two so that neither can be guessed or
// swapped.
const tokenMACBytes = 18 // 144 bits, 24 base64url characters

func (d *Dispatcher) tokenMAC(email, sendID string) string {
	m := hmac.New(sha256.New, d.opts.TokenSecret)
	m.Write([]byte("nudge-unsubscribe\x00"))
	m.Write([]byte(sendID))
	m.Write([]byte{0})
	m.Write([]byte(behavior.NormalizeEmail(email)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:tokenMACBytes])
}

// UnsubscribeToken signs an unsubscribe token for one send to email.
func (d *Dispatcher) UnsubscribeToken(email, sendID string) string {
	return sendID + "." + d.tokenMAC(email, sendID)
}

// UnsubscribeURL is the public one-click unsubscribe link of a send.
func (d *Dispatcher) UnsubscribeURL(email, sendID string) string {
	return d.opts.PublicURL + "/u/" + d.UnsubscribeToken(email, sendID)
}

// verifyToken returns the send a token was issued for.
func (d *Dispatcher) verifyToken(ctx context.Context, token string) (storage.Send, error) {
	id, mac, ok := strings.Cut(token, ".")
	if !ok || id == "" || len(mac) != base64.RawURLEncoding.EncodedLen(tokenMACBytes) {
		return storage.Send{}, ErrBadToken
	}
	s, err := d.store.Send(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Send{}, ErrBadToken
	}
	if err != nil {
		return storage.Send{}, err
	}
	if !hmac.Equal([]byte(mac), []byte(d.tokenMAC(s.Email, id))) {
		return storage.Send{}, ErrBadToken
	}
	return s, nil
}

// Unsubscribe appends the unsubscribed record for the send a token names;
// the store suppresses the address and the rules engine ends the
// profile's journeys on that record. Repeating it changes nothing.
func (d *Dispatcher) Unsubscribe(ctx context.Context, token string) (storage.Send, error) {
	s, err := d.verifyToken(ctx, token)
	if err != nil {
		return storage.Send{}, fmt.Errorf("sending: unsubscribe: %w", err)
	}
	r := behavior.Record{
		ID:     behavior.DeriveID(string(behavior.Unsubscribed), "nudge", s.ID),
		Kind:   behavior.Unsubscribed,
		Source: "nudge",
		At:     d.now(),
		Email:  s.Email,
		Attrs:  map[string]any{behavior.AttrReason: "unsubscribe link"},
	}
	r.SetRef(behavior.RefSendID, s.ID)
	r.SetRef(behavior.RefRuleID, s.Rule)
	r.SetRef(behavior.RefStep, strconv.Itoa(s.Step))
	if _, err := d.store.Append(ctx, storage.Ingest{Records: []behavior.Record{r}}); err != nil {
		return storage.Send{}, fmt.Errorf("sending: unsubscribe %s: %w", s.ID, err)
	}
	d.opts.Logger.Info("unsubscribed", "send_id", s.ID, "rule", s.Rule, "to", maskEmail(s.Email))
	return s, nil
}

// RegisterRoutes serves the unsubscribe page (GET /u/:token) and the
// unsubscribe action (POST /u/:token), which is both the page's form and
// RFC 8058 one-click (body "List-Unsubscribe=One-Click").
func (d *Dispatcher) RegisterRoutes(r gin.IRouter) {
	r.GET("/u/:token", d.unsubscribePage)
	r.POST("/u/:token", d.unsubscribePost)
}

var pageTemplate = htmltemplate.Must(htmltemplate.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.6rem 1.2rem}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Text}}</p>
{{if .Form}}<form method="post"><input type="hidden" name="confirm" value="yes"><button type="submit">Unsubscribe</button></form>{{end}}
</body></html>
`))

type page struct {
	Title, Text string
	Form        bool
}

func (d *Dispatcher) renderPage(c *gin.Context, status int, p page) {
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	c.Data(status, "text/html; charset=utf-8", b.Bytes())
}

func (d *Dispatcher) storeName() string {
	if n := d.storeFor("").Name; n != "" {
		return n
	}
	return "this shop"
}

// unsubscribePage only shows a confirmation form: mail scanners follow
// GET links, so a GET must never unsubscribe anyone.
func (d *Dispatcher) unsubscribePage(c *gin.Context) {
	s, err := d.verifyToken(c.Request.Context(), c.Param("token"))
	if err != nil {
		d.badToken(c, err)
		return
	}
	d.renderPage(c, http.StatusOK, page{
		Title: "Unsubscribe",
		Text:  "Stop marketing email from " + d.storeName() + " to " + maskEmail(s.Email) + "?",
		Form:  true,
	})
}

func (d *Dispatcher) unsubscribePost(c *gin.Context) {
	if _, err := d.Unsubscribe(c.Request.Context(), c.Param("token")); err != nil {
		d.badToken(c, err)
		return
	}
	d.renderPage(c, http.StatusOK, page{
		Title: "You are unsubscribed",
		Text:  "You will not get marketing email from " + d.storeName() + " any more.",
	})
}

func (d *Dispatcher) badToken(c *gin.Context, err error) {
	if errors.Is(err, ErrBadToken) {
		d.renderPage(c, http.StatusNotFound, page{Title: "Link not valid", Text: "This unsubscribe link is not valid. Please use the link in the latest email you received."})
		return
	}
	d.opts.Logger.Error("unsubscribe failed", "error", err)
	d.renderPage(c, http.StatusInternalServerError, page{Title: "Something went wrong", Text: "Please try again in a minute."})
}

// maskEmail hides most of the local part for logs and pages:
// ann@example.com → a***@example.com.
func maskEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" {
		return "***"
	}
	_, n := utf8.DecodeRuneInString(local)
	return local[:n] + "***@" + domain
}
