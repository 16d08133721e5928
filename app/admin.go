package app

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/nudge-email/nudge/admin"
	"github.com/nudge-email/nudge/backtest"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/server"
)

// buildAdmin wires the admin page to the engine, dispatcher and store.
func (a *App) buildAdmin(hooks []server.Webhook) (*admin.Admin, *admin.Health, error) {
	cfg := a.Config
	base := strings.TrimRight(cfg.PublicURL, "/")
	var conns []admin.ConnectorInfo
	for _, h := range hooks {
		u := base + "/webhooks/" + h.Source
		if h.Store != "" {
			u += "/" + h.Store
		}
		conns = append(conns, admin.ConnectorInfo{Source: h.Source, Store: h.Store, URL: u})
	}
	health := admin.NewHealth()
	d := a.parts.dispatcher
	adm, err := admin.New(admin.Options{
		Store: a.Store, Token: cfg.Admin.Token, PublicURL: cfg.PublicURL, Currency: firstCurrency(cfg),
		Clock: a.Clock, Logger: a.Logger, Health: health, Connectors: conns,
		RulesFunc: a.adminRules,
		RuleStatsFunc: func(ctx context.Context) (map[string]admin.RuleStats, error) {
			st, err := d.RuleStats(ctx)
			if err != nil {
				return nil, err
			}
			out := make(map[string]admin.RuleStats, len(st))
			for id, s := range st {
				out[id] = admin.RuleStats{
					Sent: s.Sent, Delivered: s.Delivered, Opened: s.Opened, Clicked: s.Clicked,
					Converted: s.Converted, Revenue: s.Revenue, Held: s.Held, HeldConverted: s.HeldConverted,
					SentConverted: s.SentConverted,
				}
			}
			return out, nil
		},
		BacktestFunc: func(ctx context.Context, ruleID string, since time.Duration) (string, error) {
			loc, err := time.LoadLocation(cfg.Timezone)
			if err != nil {
				return "", err
			}
			rep, err := backtest.Run(ctx, a.Store, a.parts.engine.Rules(), backtest.Options{
				Since: a.Clock.Now().Add(-since), Rule: ruleID, Policies: cfg.Policies, Stores: cfg.Stores,
				Timezone: loc, Logger: a.Logger,
			})
			if err != nil {
				return "", err
			}
			var b bytes.Buffer
			err = rep.WriteText(&b)
			return b.String(), err
		},
		RetrySendFunc: func(ctx context.Context, id string) error {
			_, err := d.RetrySend(ctx, id)
			a.Scheduler.Wake()
			return err
		},
		DiscardSendFunc: func(ctx context.Context, id string) error {
			_, err := d.DiscardSend(ctx, id)
			return err
		},
		RecommendFunc: a.recommend,
	})
	return adm, health, err
}

// adminRules lists the active rules, plus the load errors of the files as
// they are on disk now (a broken edit shows before anyone reloads).
func (a *App) adminRules(ctx context.Context) ([]admin.RuleInfo, error) {
	var out []admin.RuleInfo
	for _, r := range a.parts.engine.Rules().Rules() {
		out = append(out, admin.RuleInfo{
			ID: r.ID, File: r.File, Description: r.Description, Trigger: string(r.Trigger.Event),
			Steps: len(r.Steps), Holdout: r.Holdout, Priority: r.Priority,
		})
	}
	files, err := a.Config.RuleFiles()
	if err != nil {
		return append(out, admin.RuleInfo{Error: err.Error()}), nil
	}
	if _, err := rules.Load(files); err != nil {
		if list, ok := err.(rules.Errors); ok {
			for _, e := range list {
				out = append(out, admin.RuleInfo{File: e.File, Error: e.Error()})
			}
		} else {
			out = append(out, admin.RuleInfo{Error: err.Error()})
		}
	}
	return out, nil
}
