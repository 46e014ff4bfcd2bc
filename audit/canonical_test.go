package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// marshalCanonical is the reference the hand-written encoder must match.
func marshalCanonical(t testing.TB, e Event, prev string) []byte {
	b, err := json.Marshal(canonicalEvent{V: 1, Seq: e.Seq, Time: formatTime(e.Time), Actor: e.Actor, ActorOrg: e.ActorOrg,
		Action: e.Action, Outcome: string(e.Outcome), CaseID: e.CaseID, Resource: e.Resource, Purpose: e.Purpose,
		IP: e.IP, RequestID: e.RequestID, Detail: e.Detail, PrevHash: prev})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkCanonical(t testing.TB, e Event, prev string) {
	if got, want := Canonical(e, prev), marshalCanonical(t, e, prev); !bytes.Equal(got, want) {
		t.Fatalf("canonical encoding differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

func TestCanonicalMatchesEncodingJSON(t *testing.T) {
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\n", "\r", "\t", "\b", "\f", "\x00", "\x01", "\x1f", "\x7f",
		"é", "审查", "\u2028", "\u2029", "\ufffd", "😀", "\xff", "\xc3", "\xe2\x80"}
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		var b bytes.Buffer
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for i := range 20000 {
		e := Event{Seq: rng.Int64N(1 << 40), Time: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC(), Actor: str(), ActorOrg: str(),
			Action: str(), Outcome: Outcome(str()), CaseID: str(), Resource: str(), Purpose: str(), IP: str(), RequestID: str(), Detail: str()}
		if i == 0 {
			e = Event{}
		}
		checkCanonical(t, e, str())
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add("actor", "<script>&\u2028", "\x00\xff", int64(7))
	f.Fuzz(func(t *testing.T, a, b, c string, seq int64) {
		checkCanonical(t, Event{Seq: seq, Actor: a, Resource: b, Detail: c, Time: time.Unix(seq%4e9, 0)}, c)
	})
}
