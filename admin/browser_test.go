package admin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/storage"
)

const chromiumPath = "/usr/bin/chromium"

// newBrowser starts headless Chromium with a throwaway profile.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser tests need Chromium at %s (apt-get install chromium): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// artifactDir is where screenshots go: $NUDGE_ARTIFACTS (CI keeps it) or
// a temp dir.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NUDGE_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "admin")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	p := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s", p)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	require.NoError(t, err, sel)
	return strings.TrimSpace(s)
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	u, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	return u
}

// TestBrowserAdmin walks the admin page in real headless Chromium: log in
// through the form, read the rule funnel from the overview, find a customer
// and their explain trace, run a backtest, retry the dead send, log out.
func TestBrowserAdmin(t *testing.T) {
	ctx := newBrowser(t)
	s := newScenario(t)
	srv, a := s.server(t)
	dir := artifactDir(t)

	// Unauthenticated: the overview sends us to the login form.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/admin/"), chromedp.WaitVisible(chromedp.ID("#token"))))
	require.Contains(t, location(t, ctx), "/admin/login?next=%2Fadmin%2F")

	// A wrong token is refused with a message.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("#token"), "not-the-token"),
		chromedp.Submit(chromedp.ID("#login")),
		chromedp.WaitVisible(chromedp.ID("#error")),
	))
	require.Contains(t, text(t, ctx, "#error"), "not the admin token")
	screenshot(t, ctx, dir, "01-login-refused")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("#token"), testToken),
		chromedp.Submit(chromedp.ID("#login")),
		chromedp.WaitVisible(chromedp.ID("#funnel")),
	))
	require.True(t, strings.HasSuffix(location(t, ctx), "/admin/"), location(t, ctx))
	screenshot(t, ctx, dir, "02-overview")

	t.Run("overview funnel", func(t *testing.T) {
		for rule, want := range s.want {
			got := map[string]string{}
			for _, stage := range append(funnelStages(), "revenue") {
				got[stage] = text(t, ctx, fmt.Sprintf(`td[data-rule=%q][data-stage=%q]`, rule, stage))
			}
			require.Equal(t, map[string]string{
				"started": fmt.Sprint(want.started), "sent": fmt.Sprint(want.sent), "delivered": fmt.Sprint(want.delivered),
				"opened": fmt.Sprint(want.opened), "clicked": fmt.Sprint(want.clicked), "converted": fmt.Sprint(want.converted),
				"revenue": want.revenue,
			}, got, rule)
		}
		// welcome: 12/40 sent vs 4/32 held out converted.
		require.Equal(t, "+17.5 pp", text(t, ctx, `#lift tr[data-rule="welcome"] [data-lift="diff"]`))
		require.Equal(t, "not enough data yet", text(t, ctx, `#lift tr[data-rule="cart-abandonment"] [data-lift="insufficient"]`))
		for src := range s.sources {
			require.NotEmpty(t, text(t, ctx, fmt.Sprintf(`#sources tr[data-source=%q]`, src)), src)
		}
	})

	t.Run("customer search, timeline and explain trace", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS(`header input[name="q"]`), s.customer),
			chromedp.Submit(chromedp.CSS(`header form.search`)),
			chromedp.WaitVisible(chromedp.ID("#timeline")),
		))
		require.Equal(t, s.customer, text(t, ctx, "#profile-email"))
		tl := text(t, ctx, "#timeline")
		for _, kind := range []string{"checkout_started", "product_viewed", "email_clicked", "order_placed", "payment_failed"} {
			require.Contains(t, tl, kind)
		}
		trace := text(t, ctx, `#journeys article[data-rule="cart-abandonment"]`)
		require.Contains(t, trace, "checkout_started matched event.value >= 2000")
		require.Contains(t, trace, "template d-cart-1 via log")
		require.Contains(t, text(t, ctx, "#decisions"), "not started: re-entry limit")
		require.Contains(t, text(t, ctx, "#consent"), "granted")
		require.Contains(t, text(t, ctx, "#sends"), "clicked 1")
		screenshot(t, ctx, dir, "03-profile")

		// A partial search lists matches.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/admin/customers?q=c10"),
			chromedp.WaitVisible(chromedp.ID("#results")),
		))
		require.Contains(t, text(t, ctx, "#results"), "c100@example.com")
	})

	t.Run("backtest button", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/admin/rules"),
			chromedp.Click(chromedp.CSS(`button[data-backtest="cart-abandonment"]`)),
			chromedp.WaitVisible(chromedp.ID("#backtest-report")),
		))
		require.Equal(t, "rule cart-abandonment since 720h0m0s: would start 40 journeys, step 1 would send 36", text(t, ctx, "#backtest-report"))
		screenshot(t, ctx, dir, "04-rules-backtest")
	})

	t.Run("retry dead send", func(t *testing.T) {
		row := fmt.Sprintf(`table[data-status="dead"] tr[data-send=%q]`, s.deadID)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/admin/outbox"),
			chromedp.WaitVisible(chromedp.CSS(row)),
		))
		require.Equal(t, "dead", text(t, ctx, row+` [data-field="status"]`))
		screenshot(t, ctx, dir, "05-outbox-dead")
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(row+` button[data-action="retry"]`)),
			chromedp.WaitVisible(chromedp.ID("#done")),
		))
		require.Contains(t, text(t, ctx, "#done"), "queued again")
		require.Contains(t, text(t, ctx, "#done"), s.deadID)
		// The dead list no longer has it; the pending list does.
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('tr[data-send=%q]').length`, s.deadID)))
		require.NoError(t, err)
		require.Zero(t, n)
		pendingRow := fmt.Sprintf(`table[data-status="pending"] tr[data-send=%q]`, s.deadID)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/admin/outbox"), chromedp.WaitVisible(chromedp.CSS(pendingRow))))
		require.Equal(t, "pending", text(t, ctx, pendingRow+` [data-field="status"]`))
		require.Equal(t, "0", text(t, ctx, `nav.tabs a[href="/admin/outbox?status=dead"] .count`))
		screenshot(t, ctx, dir, "06-outbox-retried")
		got, err := s.db.Send(context.Background(), s.deadID)
		require.NoError(t, err)
		require.Equal(t, storage.SendPending, got.Status)
	})

	t.Run("health", func(t *testing.T) {
		// app wires Health.Observe to server.Options.OnWebhook; here the
		// test plays the server.
		now := s.clk.Now()
		for i, o := range []string{"stored", "stored", "duplicate", "bad_signature", "stored", "ignored"} {
			a.Health().Observe("stripe", o, now.Add(-time.Duration(6-i)*time.Minute))
		}
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/admin/health"), chromedp.WaitVisible(chromedp.ID("#connectors"))))
		row := `#connectors tr[data-source="stripe"]`
		require.Equal(t, "https://nudge.example.com/webhooks/stripe", text(t, ctx, row+` [data-field="url"]`))
		require.Equal(t, "4", text(t, ctx, row+` [data-field="accepted"]`))
		require.Equal(t, "1", text(t, ctx, row+` [data-field="bad_signature"]`))
		require.Equal(t, "1", text(t, ctx, row+` [data-field="duplicate"]`))
		require.Contains(t, text(t, ctx, row+` [data-field="last"]`), "1 min ago")
		screenshot(t, ctx, dir, "07-health")
	})

	t.Run("logout", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/admin/"),
			chromedp.Click(chromedp.CSS(`form.logout button`)),
			chromedp.WaitVisible(chromedp.ID("#token")),
			chromedp.Navigate(srv.URL+"/admin/rules"),
			chromedp.WaitVisible(chromedp.ID("#token")),
		))
		require.Contains(t, location(t, ctx), "/admin/login?next=%2Fadmin%2Frules")
	})
}
