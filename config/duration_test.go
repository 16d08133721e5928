package config

import (
	"encoding/json"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationYAMLAndText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "90m", want: 90 * time.Minute},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "2w", want: 14 * 24 * time.Hour},
		{in: "soon", err: true},
		{in: "[1d]", err: true},
	}
	for _, tt := range tests {
		var v struct {
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte("d: "+tt.in), &v)
		if (err != nil) != tt.err {
			t.Errorf("yaml %q: err = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && v.D.D() != tt.want {
			t.Errorf("yaml %q = %v, want %v", tt.in, v.D.D(), tt.want)
		}
		var j struct{ D Duration }
		err = json.Unmarshal([]byte(`{"D":"`+tt.in+`"}`), &j)
		if (err != nil) != tt.err {
			t.Errorf("json %q: err = %v, want error %v", tt.in, err, tt.err)
		}
	}
	out, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(3 * 24 * time.Hour)})
	if err != nil || string(out) != "d: 3d\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
}
