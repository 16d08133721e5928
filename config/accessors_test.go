package config

import (
	"testing"
	"time"
)

func TestAccessors(t *testing.T) {
	t.Parallel()
	f := false
	if !(StorageConfig{}).KeepsRaw() || (StorageConfig{KeepRaw: &f}).KeepsRaw() {
		t.Error("KeepsRaw: nil must mean true, false must mean false")
	}
	c := Default()
	if c.Location() != time.UTC {
		t.Errorf("Location() = %v", c.Location())
	}
	c.Timezone = "Europe/Berlin"
	if c.Location().String() != "Europe/Berlin" {
		t.Errorf("Location() = %v", c.Location())
	}
	c.Timezone = "Nowhere/Else"
	if c.Location() != time.UTC {
		t.Errorf("bad zone: Location() = %v, want UTC", c.Location())
	}
	tests := []struct {
		q          QuietHours
		start, end time.Duration
		ok         bool
	}{
		{QuietHours{"21:00", "08:00"}, 21 * time.Hour, 8 * time.Hour, true},
		{QuietHours{"00:00", "23:59"}, 0, 23*time.Hour + 59*time.Minute, true},
		{QuietHours{}, 0, 0, false},
		{QuietHours{"9:00", "10:00"}, 0, 0, false},
	}
	for _, tt := range tests {
		s, e, ok := tt.q.Window()
		if s != tt.start || e != tt.end || ok != tt.ok {
			t.Errorf("%+v.Window() = %v, %v, %v", tt.q, s, e, ok)
		}
	}
}
