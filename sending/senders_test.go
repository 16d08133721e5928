package sending

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/storage"
)

func TestNewSendersFromConfig(t *testing.T) {
	tests := []struct {
		name    string
		email   config.Email
		want    []string
		wantErr bool
	}{
		{"example config: log only", config.Default().Email, []string{"log"}, false},
		{"sendgrid key", config.Email{SendGrid: config.SendGrid{APIKey: "SG.x"}}, []string{"log", "sendgrid"}, false},
		{"mailgun key and domain", config.Email{Mailgun: config.Mailgun{APIKey: "k", Domain: "mg.example.com", APIBase: "https://api.eu.mailgun.net/v3"}}, []string{"log", "mailgun"}, false},
		{"mailgun without domain is not configured", config.Email{Mailgun: config.Mailgun{APIKey: "k"}}, []string{"log"}, false},
		{"mailgun with a bad base", config.Email{Mailgun: config.Mailgun{APIKey: "k", Domain: "d", APIBase: "https://api.mailgun.net"}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSenders(tt.email, t.TempDir(), nil)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			var names []string
			for name, snd := range s {
				assert.Equal(t, name, snd.Name())
				names = append(names, name)
			}
			sort.Strings(names)
			assert.Equal(t, tt.want, names)
		})
	}
}

func TestOptionsFromExampleConfigBuildADispatcher(t *testing.T) {
	c := config.Default()
	c.Timezone = "Europe/Paris"
	o, err := OptionsFromConfig(c)
	require.NoError(t, err)
	assert.Equal(t, "Europe/Paris", o.Timezone.String())
	assert.Equal(t, "log", o.DefaultProvider)
	assert.Equal(t, 2, o.Policies.FrequencyCap.Max)
	assert.Equal(t, 5*24*time.Hour, o.Policies.AttributionWindow.D())

	db, err := storage.Open(t.TempDir()+"/nudge.db", storage.Options{NoSync: true})
	require.NoError(t, err)
	defer db.Close()
	senders, err := NewSenders(c.Email, t.TempDir(), nil)
	require.NoError(t, err)
	o.TokenSecret = []byte("secret")
	_, err = New(db, senders, o)
	require.NoError(t, err)

	c.Email.Provider = "sendgrid" // no key: no sender
	o, _ = OptionsFromConfig(c)
	o.TokenSecret = []byte("secret")
	_, err = New(db, senders, o)
	assert.ErrorIs(t, err, ErrNoSender)

	c.Timezone = "Nowhere/Land"
	_, err = OptionsFromConfig(c)
	assert.Error(t, err)
}
