package sending

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

func unsubscribeRouter(h *harness) *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	h.d.RegisterRoutes(r)
	return r
}

func do(r http.Handler, method, target, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func tokenPath(h *harness, email, sendID string) string {
	u, err := url.Parse(h.d.UnsubscribeURL(email, sendID))
	require.NoError(h.t, err)
	require.Equal(h.t, "nudge.example.com", u.Host)
	return u.Path
}

func TestUnsubscribePageConfirmsBeforeActing(t *testing.T) {
	h := newHarness(t)
	id, _ := h.queued("ann@example.com")
	r := unsubscribeRouter(h)

	w := do(r, http.MethodGet, tokenPath(h, "ann@example.com", id), "", "")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `<form method="post">`)
	assert.Contains(t, w.Body.String(), "a***@example.com")
	assert.NotContains(t, w.Body.String(), "ann@example.com")
	_, suppressed, err := h.db.Suppressed(h.ctx, "ann@example.com")
	require.NoError(t, err)
	assert.False(t, suppressed, "a GET (mail scanners follow links) must not unsubscribe")
}

func TestUnsubscribePost(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
	}{
		{"RFC 8058 one-click", "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"},
		{"the page's form", "application/x-www-form-urlencoded", "confirm=yes"},
		{"one-click as multipart", "multipart/form-data; boundary=xx", "--xx\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--xx--\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			id, p := h.queued("ann@example.com")
			r := unsubscribeRouter(h)
			path := tokenPath(h, "ann@example.com", id)

			w := do(r, http.MethodPost, path, tt.contentType, tt.body)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), "unsubscribed")

			sup, ok, err := h.db.Suppressed(h.ctx, "ann@example.com")
			require.NoError(t, err)
			require.True(t, ok, "address not suppressed")
			assert.Equal(t, behavior.SuppressUnsubscribed, sup.Reason)

			recs, err := h.db.RecordsByProfile(h.ctx, p.ID, storage.RecordQuery{Kinds: []behavior.Kind{behavior.Unsubscribed}})
			require.NoError(t, err)
			require.Len(t, recs, 1)
			assert.Equal(t, "nudge", recs[0].Source)
			assert.Equal(t, id, recs[0].Ref(behavior.RefSendID))
			assert.Equal(t, "cart-abandonment", recs[0].Ref(behavior.RefRuleID))

			// A second click stores nothing new.
			w = do(r, http.MethodPost, path, tt.contentType, tt.body)
			assert.Equal(t, http.StatusOK, w.Code)
			recs, _ = h.db.RecordsByProfile(h.ctx, p.ID, storage.RecordQuery{Kinds: []behavior.Kind{behavior.Unsubscribed}})
			assert.Len(t, recs, 1)

			// And the queued send is not made.
			h.runDue()
			assert.Equal(t, 0, h.sg.count())
		})
	}
}

func TestUnsubscribeRejectsBadTokens(t *testing.T) {
	h := newHarness(t)
	id, p := h.queued("ann@example.com")
	bobID, _ := h.queued("bob@example.com")
	good := h.d.UnsubscribeToken("ann@example.com", id)
	other := newHarness(t, func(o *Options) { o.TokenSecret = []byte("another secret") })
	tests := []struct {
		name, token string
	}{
		{"garbage", "nope"},
		{"empty mac", id + "."},
		{"flipped mac", id + "." + flip(good[len(id)+1:])},
		{"unknown send", SendID("x", 1) + good[len(id):]},
		{"mac of another send", bobID + good[len(id):]},
		{"mac for another address", h.d.UnsubscribeToken("eve@example.com", id)},
		{"signed with another secret", other.d.UnsubscribeToken("ann@example.com", id)},
	}
	r := unsubscribeRouter(h)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range []string{http.MethodGet, http.MethodPost} {
				w := do(r, m, "/u/"+url.PathEscape(tt.token), "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
				assert.Equal(t, http.StatusNotFound, w.Code, m)
				assert.Contains(t, w.Body.String(), "not valid")
			}
		})
	}
	_, ok, _ := h.db.Suppressed(h.ctx, "ann@example.com")
	assert.False(t, ok)
	recs, _ := h.db.RecordsByProfile(h.ctx, p.ID, storage.RecordQuery{Kinds: []behavior.Kind{behavior.Unsubscribed}})
	assert.Empty(t, recs)
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}
