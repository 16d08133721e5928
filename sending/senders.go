package sending

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/connectors/mailgun"
	"github.com/nudge-email/nudge/connectors/sendgrid"
)

// NewSenders builds the senders the email config allows, by provider
// name: "log" always (writing into mailDir), "sendgrid" when it has an API
// key, "mailgun" when it has an API key and a domain. A rule may then pick
// any configured provider; the default must be among them, which New
// checks.
func NewSenders(e config.Email, mailDir string, logger *slog.Logger) (map[string]connectors.Sender, error) {
	out := map[string]connectors.Sender{logsender.Name: logsender.New(mailDir, logger)}
	hc := &http.Client{Timeout: DefaultSendTimeout + 5*time.Second}
	if e.SendGrid.APIKey != "" {
		out["sendgrid"] = sendgrid.NewSender(sendgrid.SenderConfig{APIKey: e.SendGrid.APIKey, APIBase: e.SendGrid.APIBase, HTTPClient: hc})
	}
	if e.Mailgun.APIKey != "" && e.Mailgun.Domain != "" {
		mg, err := mailgun.NewSender(mailgun.SenderConfig{APIKey: e.Mailgun.APIKey, Domain: e.Mailgun.Domain, APIBase: e.Mailgun.APIBase, HTTPClient: hc})
		if err != nil {
			return nil, fmt.Errorf("sending: %w", err)
		}
		out["mailgun"] = mg
	}
	return out, nil
}

// OptionsFromConfig fills the config-derived Options; the caller adds the
// token secret, clock, logger, recommender and rule priorities.
func OptionsFromConfig(c *config.Config) (Options, error) {
	loc := time.UTC
	if c.Timezone != "" {
		l, err := time.LoadLocation(c.Timezone)
		if err != nil {
			return Options{}, fmt.Errorf("sending: timezone %q: %w", c.Timezone, err)
		}
		loc = l
	}
	o := Options{
		Policies:         c.Policies,
		Timezone:         loc,
		From:             connectors.Address{Email: c.Email.From.Email, Name: c.Email.From.Name},
		PublicURL:        c.PublicURL,
		Stores:           c.Stores,
		DefaultProvider:  c.Email.Provider,
		UnsubscribeGroup: c.Email.SendGrid.UnsubscribeGroup,
	}
	if c.Email.ReplyTo.Email != "" {
		o.ReplyTo = &connectors.Address{Email: c.Email.ReplyTo.Email, Name: c.Email.ReplyTo.Name}
	}
	return o, nil
}
