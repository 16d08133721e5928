package admin

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// get fetches path with the admin token as a Bearer header.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := noRedirect().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestPagesRender(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	srv, _ := s.server(t)
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/admin/", 200, []string{`data-rule="cart-abandonment" data-stage="sent">36<`, `data-rule="welcome" data-stage="converted">12<`, `$648.00`, "not enough data yet", `data-source="web"`, "<polyline"}},
		{"/admin/rules", 200, []string{"rules.d/cart-abandonment.yaml", "unknown field", `data-backtest="winback"`, `<span class="tag good">ok</span>`}},
		{"/admin/customers?q=c00", 200, []string{"c001@example.com", "c009@example.com"}},
		{"/admin/customers?q=Cust+10", 200, []string{"c100@example.com", "c109@example.com"}},
		{"/admin/customers?q=nobody%40example.com", 200, []string{"No customer matches"}},
		{"/admin/customers/" + url.PathEscape(email(0)), 200, []string{"checkout_started", "re-entry limit", "champions", "single_opt_in", `src="/admin/static/favicon.svg"`, "delivered 1"}},
		{"/admin/customers/nobody@example.com", 404, []string{"No customer with that address"}},
		{"/admin/outbox", 200, []string{s.deadID, "550 mailbox unavailable", `data-action="retry"`}},
		{"/admin/outbox?status=held", 200, []string{"holdout"}},
		{"/admin/health", 200, []string{"https://nudge.example.com/webhooks/shopify/main", "nothing since start"}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.path, "/", "_"), func(t *testing.T) {
			code, body := get(t, srv.URL, tc.path)
			require.Equal(t, tc.status, code, body)
			for _, w := range tc.want {
				require.Contains(t, body, w)
			}
		})
	}
}
