package app

import (
	"context"

	"fmt"
	"github.com/nudge-email/nudge/behavior"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/connectors/mailgun"
	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/importer"
	"github.com/nudge-email/nudge/insights"
	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/sending"
	"github.com/nudge-email/nudge/server"
	"github.com/nudge-email/nudge/storage"
)

// parts are the business components between the store and the server.
type parts struct {
	engine      *journey.Engine
	dispatcher  *sending.Dispatcher
	senders     map[string]connectors.Sender
	mounts      []func(gin.IRouter)
	hooks       server.Hooks
	insights    *insights.Engine
	recommender sending.Recommender
}

// recommender adapts the insights engine to the catalog-product shape
// sending and the rules' recommend() use.
type recommender struct{ e *insights.Engine }

func (r recommender) Recommend(ctx context.Context, profileID string, n int) ([]storage.Product, error) {
	recs, err := r.e.Recommend(ctx, profileID, n)
	if err != nil {
		return nil, err
	}
	out := make([]storage.Product, 0, len(recs))
	for _, x := range recs {
		out = append(out, storage.Product{ProductID: x.ProductID, Title: x.Title, URL: x.URL, ImageURL: x.ImageURL, Price: x.Price, Currency: x.Currency})
	}
	return out, nil
}

// Insights is the insights engine.
func (a *App) Insights() *insights.Engine { return a.parts.insights }

// recommend serves the admin page and the profile API.
func (a *App) recommend(ctx context.Context, profileID string, n int) ([]storage.Product, error) {
	if a.parts.recommender == nil {
		return nil, nil
	}
	return a.parts.recommender.Recommend(ctx, profileID, n)
}

// Senders builds every provider that is configured: log always, SendGrid
// and Mailgun when their API keys are set (a rule may pick any of them).
func Senders(cfg *config.Config, dataDir string, a *App) (map[string]connectors.Sender, error) {
	out := map[string]connectors.Sender{"log": logsender.New(dataDir, a.Logger)}
	if cfg.Email.SendGrid.APIKey != "" {
		out["sendgrid"] = sendgrid.NewSender(sendgrid.SenderConfig{APIKey: cfg.Email.SendGrid.APIKey, APIBase: cfg.Email.SendGrid.APIBase, Clock: a.Clock})
	}
	if cfg.Email.Mailgun.APIKey != "" {
		mg, err := mailgun.NewSender(mailgun.SenderConfig{APIKey: cfg.Email.Mailgun.APIKey, Domain: cfg.Email.Mailgun.Domain, APIBase: cfg.Email.Mailgun.APIBase})
		if err != nil {
			return nil, fmt.Errorf("mailgun: %w", err)
		}
		out["mailgun"] = mg
	}
	if _, ok := out[cfg.Email.Provider]; !ok {
		return nil, fmt.Errorf("email.provider is %q but its api_key is not set", cfg.Email.Provider)
	}
	return out, nil
}

func (a *App) wire(ctx context.Context, opts Options) error {
	cfg := a.Config
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	senders, err := Senders(cfg, cfg.DataDir, a)
	if err != nil {
		return err
	}
	var replyTo *connectors.Address
	if cfg.Email.ReplyTo.Email != "" {
		replyTo = &connectors.Address{Email: cfg.Email.ReplyTo.Email, Name: cfg.Email.ReplyTo.Name}
	}
	ins := insights.New(a.Store, insights.Options{Config: cfg.Insights, Location: loc, Clock: a.Clock, Logger: a.Logger})
	rec := recommender{ins}
	var eng *journey.Engine
	priority := func(rule string) (int, bool) {
		if r := eng.Rules().Rule(rule); r != nil {
			return r.Priority, true
		}
		return 0, false
	}
	d, err := sending.New(a.Store, senders, sending.Options{
		RulePriorityFunc: priority,
		Policies:         cfg.Policies, Timezone: loc,
		From:    connectors.Address{Email: cfg.Email.From.Email, Name: cfg.Email.From.Name},
		ReplyTo: replyTo, PublicURL: cfg.PublicURL, TokenSecret: TokenSecret(cfg), Stores: cfg.Stores, LinkHosts: originHosts(cfg),
		DefaultProvider: cfg.Email.Provider, UnsubscribeGroup: cfg.Email.SendGrid.UnsubscribeGroup,
		Recommender: rec, Clock: a.Clock, Logger: a.Logger,
	})
	if err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	eng = journey.New(a.Store, d, journey.Options{
		Clock: a.Clock, Logger: a.Logger, Observers: []dispatch.Observer{d, ins},
		Recommender: rec, BestHourFunc: ins.BestHourOf,
		Stores: cfg.Stores, Timezone: loc,
	})
	files, err := cfg.RuleFiles()
	if err != nil {
		return err
	}
	set, err := rules.Load(files)
	if err != nil {
		return fmt.Errorf("rules:\n%w", err)
	}
	eng.SetRules(set)
	eng.Register(a.Scheduler)
	d.Register(a.Scheduler)
	a.parts = &parts{engine: eng, dispatcher: d, senders: senders, insights: ins, recommender: rec}
	a.parts.mounts = []func(gin.IRouter){d.RegisterRoutes}
	a.parts.hooks = server.Hooks{
		ReloadRules: a.ReloadRules,
		Explain: func(ctx context.Context, profileID, rule string) (any, error) {
			return journey.Explain(ctx, a.Store, profileID, rule)
		},
		Rules: a.RuleSummaries,
		Forget: func(ctx context.Context, p storage.Profile) error {
			return Forget(ctx, a.Store, cfg.DataDir, p)
		},
		// The live fit, or one made on request as of a time (as `nudge
		// insights` makes it), which replaces nothing.
		Insights: func(ctx context.Context, asOf time.Time) (any, error) {
			if asOf.IsZero() {
				return ins.Report(), nil
			}
			return ins.Analyze(ctx, asOf)
		},
		Recommend: func(ctx context.Context, profileID string, n int) (any, error) {
			return ins.Recommend(ctx, profileID, n)
		},
		Import: func(ctx context.Context, req server.ImportRequest, r io.Reader) (any, error) {
			format := req.Format
			if format == "" {
				format = importer.FormatNDJSON
			}
			if !slices.Contains(importer.Formats(), format) {
				return nil, fmt.Errorf("%w: unknown format %q (known: %s)", storage.ErrInvalid, format, strings.Join(importer.Formats(), ", "))
			}
			opts, err := importer.OptionsFor(cfg, format, req.Store)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", storage.ErrInvalid, err)
			}
			opts.FirstLine = req.FirstLine
			rep, err := importer.ImportReader(ctx, a.Store, req.File, r, format, opts)
			if rep.Imported > 0 {
				if merr := a.Store.MarkBackfilled(ctx, a.Clock.Now()); merr != nil {
					a.Logger.Warn("import: insights will refit on schedule only", "error", merr)
				}
			}
			if err == nil {
				a.Scheduler.Wake()
			}
			return rep, err
		},
		RetrySend: func(ctx context.Context, id string) error {
			_, err := d.RetrySend(ctx, id)
			a.Scheduler.Wake()
			return err
		},
		DiscardSend: func(ctx context.Context, id string) error {
			_, err := d.DiscardSend(ctx, id)
			return err
		},
	}
	return nil
}

// Engine is the journey engine.
func (a *App) Engine() *journey.Engine { return a.parts.engine }

// Dispatcher is the sending dispatcher.
func (a *App) Dispatcher() *sending.Dispatcher { return a.parts.dispatcher }

// ReloadRules re-reads the rule files and swaps them in atomically; on any
// error the previous set stays.
func (a *App) ReloadRules(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	files, err := a.Config.RuleFiles()
	if err != nil {
		return err
	}
	res, err := a.parts.engine.ReloadFiles(ctx, files)
	if err != nil {
		return err
	}
	a.Logger.Info("rules reloaded", "rules", res.Rules, "added", res.Added, "removed", res.Removed, "journeys_ended", res.Ended)
	return nil
}

// RuleSummary is one rule in GET /api/v1/rules.
type RuleSummary struct {
	ID          string  `json:"id"`
	Description string  `json:"description,omitempty"`
	File        string  `json:"file,omitempty"`
	Trigger     string  `json:"trigger"`
	Steps       int     `json:"steps"`
	Started     int     `json:"started"`
	Active      int     `json:"active"`
	Sent        int     `json:"sent"`
	Exited      int     `json:"exited"`
	Suppressed  int     `json:"suppressed"`
	HeldOut     int     `json:"held_out"`
	Converted   int     `json:"converted"`
	Revenue     int64   `json:"revenue"`
	Stats       any     `json:"stats,omitempty"`
	Holdout     float64 `json:"holdout,omitempty"`
}

// RuleSummaries lists the loaded rules with their counts.
func (a *App) RuleSummaries(ctx context.Context) (any, error) {
	set := a.parts.engine.Rules()
	counts, err := journey.Counts(ctx, a.Store, set)
	if err != nil {
		return nil, err
	}
	stats, err := a.parts.dispatcher.RuleStats(ctx)
	if err != nil {
		return nil, err
	}
	byRule := map[string]journey.RuleCounts{}
	for _, c := range counts {
		byRule[c.Rule] = c
	}
	out := []RuleSummary{}
	for _, r := range set.Rules() {
		c := byRule[r.ID]
		st := stats[r.ID]
		out = append(out, RuleSummary{
			ID: r.ID, Description: r.Description, File: r.File, Trigger: string(r.Trigger.Event), Steps: len(r.Steps),
			Started: c.Started, Active: c.Active, Exited: c.Exited, Suppressed: c.Suppressed, HeldOut: c.HeldOut,
			Sent: st.Sent, Converted: st.Converted, Revenue: st.Revenue, Stats: st, Holdout: r.Holdout,
		})
	}
	return map[string]any{"rules": out}, nil
}

// backfillQuiet is how long after an import's last records runRefits
// refits the models (App.backfillQuiet).
const backfillQuiet = 30 * time.Second

// runRefits refits the insights models every insights.refit_every until
// ctx ends. At start it reuses the fit the last refit saved in the store
// when that is younger than refit_every, so a restart does not read the
// whole history again; without one (or with a stale one) it refits at
// once.
func (a *App) runRefits(ctx context.Context) {
	ins := a.parts.insights
	every := a.Config.Insights.RefitEvery.D()
	if every <= 0 {
		every = 24 * time.Hour
	}
	wait, err := ins.NextRefit(ctx, a.Clock.Now(), every)
	if err != nil {
		a.Logger.Warn("insights: saved fit not read; refitting", "error", err)
	} else if wait > 0 {
		rep := ins.Report()
		a.Logger.Info("insights restored", "as_of", rep.AsOf, "profiles", rep.Profiles, "next_refit_in", wait.Round(time.Second))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	// An import (of years of orders, often) makes the live fit miss
	// history until the next refit, up to refit_every away: refit once the
	// import has been quiet for backfillQuiet (a large one arrives in
	// pieces).
	check := time.NewTicker(a.backfillQuiet / 2)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-check.C:
			at, stale, err := ins.BackfilledSince(ctx)
			if err != nil || !stale || a.Clock.Now().Sub(at) < a.backfillQuiet {
				continue
			}
			a.Logger.Info("insights: refitting after an import", "imported_at", at)
		}
		start := time.Now()
		if rep, err := ins.Refit(ctx, a.Clock.Now()); err != nil {
			if ctx.Err() == nil {
				a.Logger.Error("insights refit failed", "error", err)
			}
		} else {
			a.Scheduler.Wake() // derived records may have been appended
			a.Logger.Info("insights refitted", "profiles", rep.Profiles, "records", rep.Records, "took", time.Since(start).Round(time.Millisecond))
		}
		t.Reset(every)
	}
}

// Resident pages of the store's memory-mapped file that startBackground
// lets accumulate before releasing them (storage.DB.BoundMapped). Every
// read maps pages of the file into the process and the kernel counts them
// as RSS until memory runs short: measured on a 1.6 GB store, the profile
// API mapped ~2.5 MB per profile read, and 20 s of orders and profile
// reads left 1.4 GB resident without the bound (bench/memory.sh).
const (
	mappedLimit      = 32 << 20
	mappedCheckEvery = 100 * time.Millisecond
)

// startBackground runs periodic maintenance until ctx ends: insights
// refits (runRefits), the bound on the store's resident mapped pages and
// retention pruning once a day.
func (a *App) startBackground(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.runRefits(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.Store.BoundMapped(ctx, mappedLimit, mappedCheckEvery)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(24 * time.Hour)
		defer t.Stop()
		for {
			if ret := a.Config.Retention.D(); ret > 0 {
				if n, err := a.Store.Prune(ctx, a.Clock.Now().Add(-ret)); err != nil {
					a.Logger.Error("retention prune failed", "error", err)
				} else if n > 0 {
					a.Logger.Info("retention pruned old records", "removed", n)
				}
				// Pruning walks whole buckets (deliveries, product views,
				// job keys) through the mapped file: unmap what it read.
				_ = a.Store.ReleaseMapped(ctx)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return &wg
}

// espReceivers mounts SendGrid and Mailgun event webhooks, with dev keys
// from the data dir when the real keys are not configured.
func (a *App) espReceivers() ([]server.Webhook, error) {
	cfg := a.Config
	var hooks []server.Webhook
	pub := cfg.Email.SendGrid.WebhookPublicKey
	if pub == "" {
		_, devPub, err := DevSendGridKey(cfg.DataDir, true)
		if err != nil {
			return nil, err
		}
		pub = devPub
		a.Logger.Warn("email.sendgrid.webhook_public_key not set: /webhooks/sendgrid accepts only events signed with the local dev key")
	}
	sg, err := sendgrid.NewReceiver(sendgrid.ReceiverConfig{PublicKey: pub})
	if err != nil {
		return nil, fmt.Errorf("sendgrid webhook: %w", err)
	}
	hooks = append(hooks, server.Webhook{Source: "sendgrid", Receiver: sg})
	key := cfg.Email.Mailgun.WebhookSigningKey
	if key == "" {
		dev, err := DevMailgunKey(cfg.DataDir, true)
		if err != nil {
			return nil, err
		}
		key = dev
		a.Logger.Warn("email.mailgun.webhook_signing_key not set: /webhooks/mailgun accepts only events signed with the local dev key")
	}
	mg, err := mailgun.NewReceiver(mailgun.ReceiverConfig{SigningKey: key})
	if err != nil {
		return nil, fmt.Errorf("mailgun webhook: %w", err)
	}
	return append(hooks, server.Webhook{Source: "mailgun", Receiver: mg}), nil
}

// Preview renders step n of a rule for a profile with the configured
// senders' data, writing nothing: the engine builds the step as it would
// at due time and the dispatcher renders it.
func Preview(ctx context.Context, cfg *config.Config, st storage.Store, ruleID string, p storage.Profile, n int) (connectors.Message, error) {
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return connectors.Message{}, err
	}
	files, err := cfg.RuleFiles()
	if err != nil {
		return connectors.Message{}, err
	}
	set, err := rules.Load(files)
	if err != nil {
		return connectors.Message{}, err
	}
	// Recommendations in a preview come from models fitted now; refitting
	// also refreshes the stored scores, as the server does daily.
	ins := insights.New(st, insights.Options{Config: cfg.Insights, Location: loc})
	if _, err := ins.Refit(ctx, time.Now()); err != nil {
		return connectors.Message{}, err
	}
	d, err := sending.New(st, map[string]connectors.Sender{cfg.Email.Provider: previewSender{cfg.Email.Provider}, "log": previewSender{"log"}}, sending.Options{
		Recommender: recommender{ins},
		Policies:    cfg.Policies, Timezone: loc,
		From:      connectors.Address{Email: cfg.Email.From.Email, Name: cfg.Email.From.Name},
		PublicURL: cfg.PublicURL, TokenSecret: TokenSecret(cfg), Stores: cfg.Stores, LinkHosts: originHosts(cfg), DefaultProvider: cfg.Email.Provider,
	})
	if err != nil {
		return connectors.Message{}, err
	}
	eng := journey.New(st, d, journey.Options{Stores: cfg.Stores, Timezone: loc})
	eng.SetRules(set)
	s, err := eng.PreviewStep(ctx, ruleID, p, n)
	if err != nil {
		return connectors.Message{}, err
	}
	return d.Render(ctx, s)
}

// previewSender satisfies the dispatcher's need for a sender per provider
// during preview; Render never calls it.
type previewSender struct{ name string }

func (p previewSender) Name() string { return p.name }

func (p previewSender) Send(context.Context, connectors.Message) (connectors.Result, error) {
	return connectors.Result{}, fmt.Errorf("preview never sends")
}

// Forget erases a person everywhere nudge keeps data: the store (records,
// journeys, sends, raw deliveries; the suppression stays as a hash) and
// the log provider's files in the data dir.
func Forget(ctx context.Context, st storage.Store, dataDir string, p storage.Profile) error {
	sends, err := st.SendsByProfile(ctx, p.ID)
	if err != nil {
		return err
	}
	var emails, sendIDs []string
	for _, id := range p.Identities {
		if id.Type == behavior.IdentEmail {
			emails = append(emails, id.Value)
		}
	}
	for _, s := range sends {
		sendIDs = append(sendIDs, s.ID)
		if s.Email != "" {
			emails = append(emails, s.Email)
		}
	}
	if err := st.Forget(ctx, p.ID); err != nil {
		return err
	}
	return logsender.New(dataDir, nil).Forget(ctx, emails, sendIDs)
}

// originHosts are the hosts of tracking.allowed_origins: the storefront's
// domains, where product links in emails may point (sending.Options.LinkHosts).
func originHosts(cfg *config.Config) []string {
	var out []string
	for _, o := range cfg.Tracking.AllowedOrigins {
		if u, err := url.Parse(o); err == nil && u.Hostname() != "" {
			out = append(out, strings.ToLower(u.Hostname()))
		}
	}
	return out
}
