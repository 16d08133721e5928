package jsonfield

import (
	"encoding/json"
	"testing"
)

func TestFields(t *testing.T) {
	t.Parallel()
	type doc struct {
		ID     ID     `json:"id"`
		Amount Amount `json:"amount"`
		Stock  OptInt `json:"stock"`
	}
	tests := []struct {
		in      string
		want    doc
		wantErr bool
	}{
		{`{"id": 9554194432293999, "amount": "199.00", "stock": 3}`, doc{ID: "9554194432293999", Amount: "199.00", Stock: OptInt{N: 3, Set: true}}, false},
		{`{"id": "42", "amount": 29.35, "stock": "7"}`, doc{ID: "42", Amount: "29.35", Stock: OptInt{N: 7, Set: true}}, false},
		{`{"id": null, "amount": null, "stock": null}`, doc{}, false},
		{`{"id": 18446744073709551616123}`, doc{ID: "18446744073709551616123"}, false},
		{`{"id": true}`, doc{}, true},
		{`{"stock": 1.5}`, doc{}, true},
		{`{"amount": {}}`, doc{}, true},
	}
	for _, tt := range tests {
		var got doc
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if (OptInt{}).Ptr() != nil || *(OptInt{N: 2, Set: true}).Ptr() != 2 {
		t.Error("Ptr")
	}
	if FirstNonEmpty(" ", "", " a ", "b") != "a" || FirstNonEmpty() != "" {
		t.Error("FirstNonEmpty")
	}
}

func FuzzScalar(f *testing.F) {
	for _, s := range []string{`"x"`, `12`, `-1.5e3`, `null`, `{}`, `"\u0000"`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var id ID
		_ = json.Unmarshal(b, &id) // must not panic
		_, _ = Scalar(b)
	})
}
