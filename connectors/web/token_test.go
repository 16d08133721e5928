package web

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIdentityToken(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	good := SignIdentity(testSecret, " Ann@Example.com ", now.Add(time.Hour))
	require.True(t, strings.HasPrefix(good, "n1."))
	require.NotContains(t, strings.ToLower(good), "ann", "the address is sealed, not readable in links")
	require.NotEqual(t, good, SignIdentity(testSecret, "ann@example.com", now.Add(time.Hour)), "fresh nonce per token")

	flipped := []byte(good)
	flipped[len(flipped)-3] ^= 1
	tests := []struct {
		name   string
		secret []byte
		token  string
		at     time.Time
		email  string
		err    error
	}{
		{"valid", testSecret, good, now, "ann@example.com", nil},
		{"valid at the last second", testSecret, good, now.Add(time.Hour), "ann@example.com", nil},
		{"expired", testSecret, good, now.Add(time.Hour + time.Second), "", ErrTokenExpired},
		{"other secret", []byte("other"), good, now, "", ErrToken},
		{"no secret", nil, good, now, "", ErrToken},
		{"tampered", testSecret, string(flipped), now, "", ErrToken},
		{"wrong version", testSecret, "n2." + strings.TrimPrefix(good, "n1."), now, "", ErrToken},
		{"not base64", testSecret, "n1.***", now, "", ErrToken},
		{"too short", testSecret, "n1.AAAA", now, "", ErrToken},
		{"empty", testSecret, "", now, "", ErrToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			email, err := VerifyIdentity(tt.secret, tt.token, tt.at)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				require.Empty(t, email)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.email, email)
		})
	}
}
