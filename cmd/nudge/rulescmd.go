package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/nudge-email/nudge/connectors/mailgun"
	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/rules/ruletest"
	"github.com/nudge-email/nudge/storage"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/config"
)

func cmdTest(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "test", "FILE... [--run REGEX]")
	run := fs.String("run", "", "run only the tests whose name matches this regular expression")
	files, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}
	return ruletest.Main(ctx, e.stdout, files, *run)
}

func cmdExplain(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "explain", "EMAIL [--rule ID] [--json] [--data-dir DIR] [-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
	rule := fs.String("rule", "", "only this rule")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	var x journey.Explanation
	a := newAdminClient(cfg)
	if a.reachable(ctx) {
		path := "/api/v1/profiles/" + emailPath(pos[0]) + "/explain"
		if *rule != "" {
			path += "?rule=" + url.QueryEscape(*rule)
		}
		resp, err := a.do(ctx, http.MethodGet, path, nil)
		if err != nil {
			fmt.Fprintln(e.stderr, "nudge explain:", err)
			return 1
		}
		err = json.NewDecoder(resp.Body).Decode(&x)
		resp.Body.Close()
		if err != nil {
			fmt.Fprintln(e.stderr, "nudge explain:", err)
			return 1
		}
	} else {
		db, err := openDirect(cfg)
		if err != nil {
			fmt.Fprintln(e.stderr, "nudge explain:", err)
			return 1
		}
		x, err = journey.ExplainEmail(ctx, db, pos[0], *rule)
		db.Close()
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				fmt.Fprintf(e.stderr, "nudge explain: no profile for %s\n", pos[0])
			} else {
				fmt.Fprintln(e.stderr, "nudge explain:", err)
			}
			return 1
		}
	}
	if *asJSON {
		return exitErr(e, writeJSON(e.stdout, x))
	}
	return exitErr(e, x.WriteText(e.stdout))
}

func exitErr(e *env, err error) int {
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge:", err)
		return 1
	}
	return 0
}

// espSample builds SendGrid and Mailgun samples signed with the configured
// key, or with the data dir's dev key when none is configured (see app).
func espSample(cfg *config.Config, source, event, email string, now time.Time) (signedSample, error) {
	switch source {
	case "sendgrid":
		if cfg.Email.SendGrid.WebhookPublicKey != "" {
			return signedSample{}, errors.New("email.sendgrid.webhook_public_key is set: only SendGrid holds the matching private key, so nudge cannot sign a sample; send a test event from SendGrid's Event Webhook settings instead")
		}
		priv, _, err := app.DevSendGridKey(cfg.DataDir, false)
		if err != nil {
			return signedSample{}, fmt.Errorf("%w (start `nudge serve` once so it creates the dev key)", err)
		}
		body, h, err := sendgrid.Sample(event, email, now)
		if err != nil {
			return signedSample{}, err
		}
		sig, err := sendgrid.SignWithKey(priv, body, h.Get(sendgrid.WebhookTimestampHeader))
		if err != nil {
			return signedSample{}, err
		}
		h.Set(sendgrid.WebhookSignatureHeader, sig)
		return signedSample{path: "/webhooks/sendgrid", body: body, header: h}, nil
	default: // mailgun
		key := cfg.Email.Mailgun.WebhookSigningKey
		if key == "" {
			var err error
			if key, err = app.DevMailgunKey(cfg.DataDir, false); err != nil {
				return signedSample{}, fmt.Errorf("%w (start `nudge serve` once so it creates the dev key)", err)
			}
		}
		body, h, err := mailgun.Sample(event, email, now)
		if err != nil {
			return signedSample{}, err
		}
		if body, err = mailgun.SignBody(key, body, now); err != nil {
			return signedSample{}, err
		}
		return signedSample{path: "/webhooks/mailgun", body: body, header: h}, nil
	}
}
