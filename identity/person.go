package identity

import (
	"encoding/json"
	"slices"
	"strings"
)

// Person is what OneID knows of one customer id (CONTRACT §6), kept in the
// people index under the customer id: the identities the profile holds,
// when it was first seen, whom it was merged into or took in, whom a split
// keeps it apart from, and its latest conflicts. The identity index says
// who holds one identity; a person says what one profile holds, so that
// most-per-profile and the survivor of a merge are decided without a
// search.
type Person struct {
	CustomerID string `json:"customer_id"`
	// Identities are the keys ("type:value") of the identities the
	// profile holds, in the order they joined it.
	Identities []string `json:"identities,omitempty"`
	// FirstSeen is the earliest message time (ms) applied to the profile.
	FirstSeen int64 `json:"first_seen"`
	// MergedInto is the survivor this profile was merged into: the
	// profile is gone, its customer id answers with the survivor's view.
	MergedInto string `json:"merged_into,omitempty"`
	// MergedIDs are the customer ids merged into this profile, directly
	// or through the profiles it took in.
	MergedIDs []string `json:"merged_ids,omitempty"`
	// Apart are customer ids a split separated from this profile: a later
	// message linking them records a conflict instead of a merge.
	Apart []string `json:"apart,omitempty"`
	// SplitFrom is the profile this one was split from: that profile's
	// rebuild moves to this one the events and rows that came with its
	// identities alone.
	SplitFrom string `json:"split_from,omitempty"`
	// Conflicts are the newest conflicts recorded on the profile.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	UpdatedAt string     `json:"updated_at,omitempty"`

	// Where the stored record stood when read; stored is false for a
	// record not written yet.
	seqNo, primaryTerm int64
	stored             bool
}

// Conflict is one message whose identities could not join one profile
// (CONTRACT §6): the reason, the profiles involved and the message's
// identities.
type Conflict struct {
	At          string   `json:"at"`
	Reason      string   `json:"reason"`
	CustomerIDs []string `json:"customer_ids"`
	Identities  []string `json:"identities"`
	Source      Source   `json:"source"`
	// Message is the Request.Message that recorded it.
	Message string `json:"message,omitempty"`
}

// key tells two records of one conflict apart from two conflicts: one
// message records one conflict, however often it comes and whatever the
// profiles involved are by then.
func (c Conflict) key() string {
	if c.Message != "" {
		return "message|" + c.Message
	}
	return c.Reason + "|" + strings.Join(c.CustomerIDs, ",") + "|" + strings.Join(c.Identities, ",")
}

// Conflict reasons: a type whose most-per-profile the message would
// exceed ("most_per_profile:crm_id"), or two sides of a split.
const (
	ReasonMostPerProfile = "most_per_profile:"
	ReasonSplit          = "split"
)

// maxConflicts is how many conflicts a person keeps, the newest; the
// identity history keeps them all.
const maxConflicts = 20

// Source is what caused an identity change: a Kafka message, or an API
// call and its caller.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	API       string
	Actor     string
}

// MarshalJSON writes {"topic","partition","offset"} for a message and
// {"api","actor"} for an API call (CONTRACT §6).
func (s Source) MarshalJSON() ([]byte, error) {
	if s.API != "" {
		return json.Marshal(map[string]string{"api": s.API, "actor": s.Actor})
	}
	return json.Marshal(map[string]any{"topic": s.Topic, "partition": s.Partition, "offset": s.Offset})
}

// UnmarshalJSON reads either form.
func (s *Source) UnmarshalJSON(data []byte) error {
	var v struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		API       string `json:"api"`
		Actor     string `json:"actor"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*s = Source{Topic: v.Topic, Partition: v.Partition, Offset: v.Offset, API: v.API, Actor: v.Actor}
	return nil
}

// ParseKey splits an identity key ("type:value") back into its identity.
func ParseKey(k string) (Identity, bool) {
	t, v, ok := strings.Cut(k, ":")
	return Identity{Type: t, Value: v}, ok && t != "" && v != ""
}

// clone copies p deeply enough for a pass to change it.
func (p *Person) clone() *Person {
	c := *p
	c.Identities = slices.Clone(p.Identities)
	c.MergedIDs = slices.Clone(p.MergedIDs)
	c.Apart = slices.Clone(p.Apart)
	c.Conflicts = slices.Clone(p.Conflicts)
	return &c
}

// count is how many identities of type t the person holds.
func (p *Person) count(t string) int {
	n := 0
	for _, k := range p.Identities {
		if strings.HasPrefix(k, t) && len(k) > len(t) && k[len(t)] == ':' {
			n++
		}
	}
	return n
}

// holds reports whether the person holds the identity key k.
func (p *Person) holds(k string) bool { return slices.Contains(p.Identities, k) }

// addConflict records c unless the person has it already; it reports
// whether it did.
func (p *Person) addConflict(c Conflict) bool {
	for _, have := range p.Conflicts {
		if have.key() == c.key() {
			return false
		}
	}
	p.Conflicts = append(p.Conflicts, c)
	if len(p.Conflicts) > maxConflicts {
		p.Conflicts = slices.Delete(p.Conflicts, 0, len(p.Conflicts)-maxConflicts)
	}
	return true
}

func addOnce(list []string, vs ...string) []string {
	for _, v := range vs {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}
