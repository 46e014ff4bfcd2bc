package api

import (
	"encoding/json"
	"testing"
	"time"
)

// TestNulField: a NUL anywhere in a decoded body, however deep, is found
// and its member named; a body without one passes.
func TestNulField(t *testing.T) {
	type factor struct {
		Factor  string `json:"factor"`
		Finding string `json:"finding"`
	}
	type Embedded struct {
		Note string `json:"note"`
	}
	type body struct {
		Embedded
		Title    string            `json:"title"`
		Optional *string           `json:"optional,omitempty"`
		Members  []string          `json:"members"`
		Factors  []factor          `json:"factors"`
		Labels   map[string]string `json:"labels"`
		Any      any               `json:"any"`
		When     time.Time         `json:"when"`
		Skipped  string            `json:"-"`
		Untagged string
	}
	for _, c := range []struct{ in, want string }{
		{`{"title":"路由器","members":["a"],"factors":[{"factor":"f","finding":"ok\nfine"}],"labels":{"k":"v"},"any":{"x":[1,"y"]}}`, ""},
		{`{"title":"a\u0000b"}`, "title"},
		{`{"optional":"\u0000"}`, "optional"},
		{`{"members":["a","b\u0000"]}`, "members[1]"},
		{`{"factors":[{"factor":"f","finding":"ok"},{"factor":"f","finding":"\u0000"}]}`, "factors[1].finding"},
		{`{"labels":{"k":"v\u0000"}}`, "labels.k"},
		{`{"labels":{"k\u0000":"v"}}`, "labels"},
		{`{"any":{"x":[1,"\u0000"]}}`, "any.x[1]"},
		{`{"note":"\u0000"}`, "note"},
		{`{"Untagged":"\u0000"}`, "Untagged"},
	} {
		var b body
		if err := json.Unmarshal([]byte(c.in), &b); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		b.Skipped = "\x00" // not a member of the JSON object
		got, found := nulField(&b)
		if found != (c.want != "") || got != c.want {
			t.Errorf("nulField(%s) = %q, %v; want %q", c.in, got, found, c.want)
		}
	}
}
