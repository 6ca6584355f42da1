package workload

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// This file is the reference model of who is whom (CONTRACT §6, OneID),
// written from the contract alone: its own normalization, blocklist and
// union-find. Like model.go it imports nothing of the service it judges.
//
// # The order it assumes
//
// The model applies messages one at a time, in the order it is fed them
// (Apply, ApplyChange, ApplyEvent), and split requests at the points it is
// given them (Split). That order stands for "the order applied" of the
// contract: where messages compete for one identity, the first fed wins.
// Kafka orders messages only per partition, so an indexer sees the same
// order as the model only for messages of one topic and key. A stream is
// therefore judged in phases (IdentityTraffic.Barriers): everything of a
// phase is applied before the next phase is produced, and a split runs
// between phases. Within a phase the people that come out must not depend
// on how messages of different keys interleave; the generator only puts
// messages that compete for an identity (a conflict) in one phase when
// they share a topic and key, and InterleaveByKey lets a test check that.
//
// # The rules, as the model reads them
//
//   - A message's identities are its non-blocked, normalized values:
//     identify: userId (crm_id), anonymousId, traits phone and email;
//     track/page/screen: userId and anonymousId; alias: userId, previousId
//     (a crm_id when some profile holds it as one when the alias is
//     applied, else an anonymous_id) and anonymousId when present; a CDC
//     customers row: its key (crm_id), phone and email. Blocked values
//     link nobody; they are kept on the message's profile as data
//     (OneIDPerson.Blocked).
//   - Resolve: the profiles the message's known identities are on. If
//     those profiles plus the message's new identities fit in one profile
//     (no type over its most-per-profile, no two sides of a remembered
//     split), they merge into the survivor and the new identities join it.
//     Otherwise nothing merges: the message attaches to the profile of its
//     highest-priority identity (crm_id, phone, email, anonymous_id; within
//     a type, userId before previousId), a new profile when that identity
//     is new; its new identities join that profile as far as they fit; and
//     one conflict is recorded on every profile involved.
//   - The survivor of a merge is the profile holding a crm_id, else the
//     one first seen (earliest message timestamp applied to it), then the
//     one created first (the model cannot know the service's customer ids:
//     creation order stands in for them).
//   - An event belongs to the profile it attached to, and moves with every
//     merge. A CRM customers row, its orders (by customer_id) and their
//     items belong to whoever holds the row's crm_id.
//   - Split moves the given identities, and the events whose identities
//     are all among them, to a new profile, and remembers the two sides:
//     no later message merges them again.
//   - A redelivered event (a message id seen before) and a CDC change not
//     newer than the applied one of its row (by source.lsn) change nothing:
//     they link nothing and record no conflict.

// Identity types (CONTRACT §6).
const (
	IdentityCRM       = "crm_id"
	IdentityPhone     = "phone"
	IdentityEmail     = "email"
	IdentityAnonymous = "anonymous_id"
)

// Conflict reasons.
const (
	// ConflictMostPerProfile prefixes the type whose most-per-profile the
	// message would exceed: "most_per_profile:crm_id" is two crm_ids.
	ConflictMostPerProfile = "most_per_profile:"
	// ConflictSplit is a message linking the two sides of a split.
	ConflictSplit = "split"
)

// Identity is one identity: its type and normalized value.
type Identity struct{ Type, Value string }

func (i Identity) String() string { return i.Type + ":" + i.Value }

// IdentityRules are the OneID configuration the model applies.
type IdentityRules struct {
	Priority       []string       // identity types, highest priority first
	MostPerProfile map[string]int // at most this many values of the type on one profile
}

// DefaultIdentityRules are the contract's defaults. The contract gives no
// default priority; the model takes the order in which §6 lists the types.
func DefaultIdentityRules() IdentityRules {
	return IdentityRules{
		Priority:       []string{IdentityCRM, IdentityPhone, IdentityEmail, IdentityAnonymous},
		MostPerProfile: map[string]int{IdentityCRM: 1, IdentityPhone: 3, IdentityEmail: 3, IdentityAnonymous: 50},
	}
}

func (r IdentityRules) rank(typ string) int {
	for i, t := range r.Priority {
		if t == typ {
			return i
		}
	}
	return len(r.Priority)
}

// NormalizeIdentity returns the value an identity is known by (phones in
// E.164 with +86 the default region, emails lowercased and trimmed, other
// types trimmed) and false when the value is blocked: it identifies
// nobody.
func NormalizeIdentity(typ, raw string) (string, bool) {
	v := strings.TrimSpace(raw)
	switch typ {
	case IdentityPhone:
		v = e164(v)
	case IdentityEmail:
		v = strings.ToLower(v)
	}
	return v, !blockedIdentity(typ, raw)
}

// e164 normalizes a phone number: digits with an explicit country code
// (+ or 00) keep it; an 11-digit mainland mobile number (1xxxxxxxxxx)
// gets +86, as does 86 followed by one. Separators (space, -, ., ( and ))
// are dropped. Anything else is kept as given (trimmed).
func e164(s string) string {
	var digits strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case r == '+' && i == 0, r == ' ', r == '-', r == '.', r == '(', r == ')':
		default:
			return s
		}
	}
	d := digits.String()
	switch {
	case d == "":
		return s
	case strings.HasPrefix(s, "+"):
		return "+" + d
	case strings.HasPrefix(d, "00") && len(d) > 2:
		return "+" + d[2:]
	case len(d) == 11 && d[0] == '1':
		return "+86" + d
	case len(d) == 13 && strings.HasPrefix(d, "861"):
		return "+" + d
	}
	return s
}

// blockedIdentity is the default blocklist of CONTRACT §6: empty, null,
// undefined, none, unknown, anonymous (in any case), values made only of
// 0 and -, and phones whose national number is one repeated digit.
func blockedIdentity(typ, raw string) bool {
	v := strings.ToLower(strings.TrimSpace(raw))
	switch v {
	case "", "null", "undefined", "none", "unknown", "anonymous", "-1":
		return true // -1: issue 11 lists it with the contract's values
	}
	if strings.Trim(v, "0-") == "" {
		return true
	}
	if typ != IdentityPhone {
		return false
	}
	n := e164(strings.TrimSpace(raw))
	switch {
	case strings.HasPrefix(n, "+86"):
		n = n[3:]
	case strings.HasPrefix(n, "+"):
		return false // another country: its national number is not split off here
	}
	n = strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, n)
	return n != "" && strings.Count(n, n[:1]) == len(n)
}

// SplitAction is a POST /v1/customers/{id}/split: the profile holding
// Profile (the harness finds its customer id by that identity) gives up
// Identities.
type SplitAction struct {
	At         int       // the barrier it runs at: after Messages[:At] are applied, before Messages[At:] are produced
	Time       time.Time // when it runs, on the stream's clock (the new profile is first seen then)
	Profile    Identity
	Identities []Identity
}

// IdentityConflict is one conflict the model recorded.
type IdentityConflict struct {
	Source     string   // "event:<message id>" or "customers:<key>@<lsn>"
	Reason     string   // ConflictMostPerProfile+type or ConflictSplit
	Identities []string // the message's identities
	People     []string // the keys of the people it is recorded on, at the end
	profiles   []int
}

// OneIDPerson is one person the model says must exist at the end.
type OneIDPerson struct {
	Key        string   // OneIDKey of its identities
	Identities []string // "type:value", sorted
	Customer   string   // the key of the CRM customers row it holds, "" when none
	Deleted    bool     // that row is deleted: the person has no document (CONTRACT §1.2)
	Orders     []string // live orders whose customer_id is its crm_id, sorted
	Items      []string // live items of those orders, sorted
	Events     []string // message ids of its events, sorted
	LastSeen   time.Time
	MergedAway int      // profiles merged into it: its merged_ids
	Conflicts  int      // conflicts recorded on it
	Blocked    []string // blocked values its messages carried, "type:raw", sorted
}

// OneIDKey is the stable name of the person holding identities ("type:value"
// strings): its crm_id, else its smallest identity of the highest-priority
// type it holds. The service mints customer ids the model cannot know, so
// people are named by what they hold; a stored document gets the same key
// from its identities.
func OneIDKey(identities []string) string {
	rules := DefaultIdentityRules()
	best, bestRank := "", len(rules.Priority)+1
	for _, id := range identities {
		typ, _, _ := strings.Cut(id, ":")
		r := rules.rank(typ)
		if r < bestRank || r == bestRank && id < best {
			best, bestRank = id, r
		}
	}
	return best
}

type oneProfile struct {
	seq       int
	parent    int // union-find: itself when it is a root
	founder   string
	firstSeen int64 // unix ms
	// Roots only:
	ids       map[Identity]bool
	merged    int
	conflicts []int // indexes into OneID.conflicts
	blocked   map[string]bool
}

type oneEvent struct {
	e     *Event
	owner int // profile index; -1: attached to none (an open case)
	ids   []Identity
}

// OneID is the reference model of identity resolution.
type OneID struct {
	rules     IdentityRules
	profiles  []*oneProfile
	owner     map[Identity]int
	events    map[string]*oneEvent
	rows      map[string]*Change // table:key → the applied change with the newest position
	apart     [][2]int           // remembered splits: these profiles' sets never merge
	conflicts []IdentityConflict
	open      []string // cases the contract leaves open, met on the way
}

// NewOneID returns an empty model with the default rules.
func NewOneID() *OneID { return NewOneIDWith(DefaultIdentityRules()) }

// NewOneIDWith returns an empty model with the given rules.
func NewOneIDWith(rules IdentityRules) *OneID {
	return &OneID{rules: rules, owner: map[Identity]int{}, events: map[string]*oneEvent{}, rows: map[string]*Change{}}
}

// Apply applies one stream message: a change or an event. Poison and
// tombstones change nothing.
func (o *OneID) Apply(m Message) {
	switch {
	case m.Poison != "" || m.Value == nil:
	case m.Change != nil:
		o.ApplyChange(m.Change)
	case m.Event != nil:
		o.ApplyEvent(m.Event)
	}
}

// ApplyStream applies msgs in order, running each split when its At is
// reached (splits sorted by At).
func (o *OneID) ApplyStream(msgs []Message, splits []SplitAction) error {
	k := 0
	for i := 0; i <= len(msgs); i++ {
		for ; k < len(splits) && splits[k].At == i; k++ {
			if err := o.Split(splits[k]); err != nil {
				return fmt.Errorf("split %d at %d: %w", k, i, err)
			}
		}
		if i < len(msgs) {
			o.Apply(msgs[i])
		}
	}
	if k < len(splits) {
		return fmt.Errorf("split %d at %d is beyond the stream's %d messages or out of order", k, splits[k].At, len(msgs))
	}
	return nil
}

// ApplyChange applies a CDC change. A customers row links its crm_id,
// phone and email; orders and items link nothing (they follow the crm_id
// of their customer).
func (o *OneID) ApplyChange(c *Change) {
	k := c.Table + ":" + c.Key
	if cur := o.rows[k]; cur != nil && cur.LSN >= c.LSN {
		return
	}
	o.rows[k] = c
	if c.Table != TableCustomers || c.Deleted() || c.Customer == nil {
		return
	}
	var ids []Identity
	var blocked []string
	add := func(typ, raw string) {
		if v, ok := NormalizeIdentity(typ, raw); ok {
			ids = append(ids, Identity{typ, v})
		} else if raw != "" {
			blocked = append(blocked, typ+":"+raw)
		}
	}
	add(IdentityCRM, c.Key)
	add(IdentityPhone, c.Customer.Phone)
	add(IdentityEmail, c.Customer.Email)
	source := fmt.Sprintf("customers:%s@%d", c.Key, c.LSN)
	if o.link(source, c.TsMs, ids, blocked) < 0 {
		o.open = append(o.open, source+": no identity that identifies anyone")
	}
}

// ApplyEvent applies an SDK message; a message id seen before is a no-op.
func (o *OneID) ApplyEvent(e *Event) {
	if _, ok := o.events[e.MessageID]; ok {
		return
	}
	ids, blocked := o.eventIdentities(e)
	source := "event:" + e.MessageID
	owner := o.link(source, e.Timestamp.UnixMilli(), ids, blocked)
	if owner < 0 {
		o.open = append(o.open, source+": no identity that identifies anyone")
	}
	o.events[e.MessageID] = &oneEvent{e: e, owner: owner, ids: ids}
}

func (o *OneID) eventIdentities(e *Event) (ids []Identity, blocked []string) {
	add := func(typ, raw string) {
		if raw == "" {
			return
		}
		if v, ok := NormalizeIdentity(typ, raw); ok {
			ids = append(ids, Identity{typ, v})
		} else {
			blocked = append(blocked, typ+":"+raw)
		}
	}
	add(IdentityCRM, e.UserID)
	if e.Type == "alias" && e.PreviousID != "" {
		typ := IdentityAnonymous
		if v, ok := NormalizeIdentity(IdentityCRM, e.PreviousID); ok {
			if _, held := o.owner[Identity{IdentityCRM, v}]; held {
				typ = IdentityCRM
			}
		}
		add(typ, e.PreviousID)
	}
	add(IdentityAnonymous, e.AnonymousID)
	if e.Type == "identify" {
		for _, typ := range []string{IdentityPhone, IdentityEmail} {
			if s, ok := e.Traits[typ].(string); ok {
				if s == "" {
					blocked = append(blocked, typ+":")
					continue
				}
				add(typ, s)
			}
		}
	}
	return ids, blocked
}

func (o *OneID) find(p int) int {
	for o.profiles[p].parent != p {
		gp := o.profiles[o.profiles[p].parent].parent
		o.profiles[p].parent = gp
		p = gp
	}
	return p
}

func (o *OneID) newProfile(founder string, ts int64) int {
	p := len(o.profiles)
	o.profiles = append(o.profiles, &oneProfile{seq: p, parent: p, founder: founder, firstSeen: ts,
		ids: map[Identity]bool{}, blocked: map[string]bool{}})
	return p
}

func (o *OneID) count(p int, typ string) int {
	n := 0
	for id := range o.profiles[p].ids {
		if id.Type == typ {
			n++
		}
	}
	return n
}

// link applies the identities of one message (sorted here by priority)
// and returns the profile the message attaches to (-1 when it has no
// identity).
func (o *OneID) link(source string, ts int64, ids []Identity, blocked []string) int {
	ids = o.dedupSorted(ids)
	if len(ids) == 0 {
		return -1
	}
	var roots []int
	var fresh []Identity
	seen := map[int]bool{}
	for _, id := range ids {
		p, ok := o.owner[id]
		if !ok {
			fresh = append(fresh, id)
			continue
		}
		if r := o.find(p); !seen[r] {
			seen[r] = true
			roots = append(roots, r)
		}
	}
	reason := o.whyNot(roots, fresh)
	var target int
	switch {
	case reason == "" && len(roots) == 0:
		target = o.newProfile(source, ts)
	case reason == "":
		target = o.merge(roots)
	default:
		if p, ok := o.owner[ids[0]]; ok {
			target = o.find(p)
		} else {
			target = o.newProfile(source, ts)
		}
	}
	t := o.profiles[target]
	t.firstSeen = min(t.firstSeen, ts)
	for _, b := range blocked {
		t.blocked[b] = true
	}
	for _, id := range fresh {
		if o.count(target, id.Type) < o.most(id.Type) {
			t.ids[id] = true
			o.owner[id] = target
		}
	}
	if reason != "" {
		involved := append([]int{}, roots...)
		if !seen[target] {
			involved = append(involved, target)
		}
		c := IdentityConflict{Source: source, Reason: reason, profiles: involved}
		for _, id := range ids {
			c.Identities = append(c.Identities, id.String())
		}
		o.conflicts = append(o.conflicts, c)
		for _, p := range involved {
			o.profiles[p].conflicts = append(o.profiles[p].conflicts, len(o.conflicts)-1)
		}
	}
	return target
}

func (o *OneID) most(typ string) int {
	if n, ok := o.rules.MostPerProfile[typ]; ok {
		return n
	}
	return 1 << 30
}

func (o *OneID) dedupSorted(ids []Identity) []Identity {
	var out []Identity
	seen := map[Identity]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return o.rules.rank(out[i].Type) < o.rules.rank(out[j].Type) })
	return out
}

// whyNot says why the roots and the fresh identities cannot be one
// profile, "" when they can.
func (o *OneID) whyNot(roots []int, fresh []Identity) string {
	in := map[int]bool{}
	for _, r := range roots {
		in[r] = true
	}
	for _, pair := range o.apart {
		if in[o.find(pair[0])] && in[o.find(pair[1])] {
			return ConflictSplit
		}
	}
	values := map[string]map[string]bool{}
	add := func(id Identity) {
		if values[id.Type] == nil {
			values[id.Type] = map[string]bool{}
		}
		values[id.Type][id.Value] = true
	}
	for _, r := range roots {
		for id := range o.profiles[r].ids {
			add(id)
		}
	}
	for _, id := range fresh {
		add(id)
	}
	for _, typ := range o.rules.Priority {
		if len(values[typ]) > o.most(typ) {
			return ConflictMostPerProfile + typ
		}
	}
	for typ, vs := range values { // a type not in the priority list
		if o.rules.rank(typ) == len(o.rules.Priority) && len(vs) > o.most(typ) {
			return ConflictMostPerProfile + typ
		}
	}
	return ""
}

// merge unites the roots into the survivor and returns it.
func (o *OneID) merge(roots []int) int {
	s := roots[0]
	for _, r := range roots[1:] {
		if o.survives(r, s) {
			s = r
		}
	}
	sp := o.profiles[s]
	for _, r := range roots {
		if r == s {
			continue
		}
		rp := o.profiles[r]
		rp.parent = s
		for id := range rp.ids {
			sp.ids[id] = true
		}
		for b := range rp.blocked {
			sp.blocked[b] = true
		}
		sp.merged += 1 + rp.merged
		sp.conflicts = append(sp.conflicts, rp.conflicts...)
		sp.firstSeen = min(sp.firstSeen, rp.firstSeen)
		rp.ids, rp.blocked, rp.conflicts, rp.merged = nil, nil, nil, 0
	}
	return s
}

// survives reports whether profile a survives a merge with b: the one
// holding a crm_id, else the one first seen, else the one created first.
func (o *OneID) survives(a, b int) bool {
	ac, bc := o.count(a, IdentityCRM) > 0, o.count(b, IdentityCRM) > 0
	if ac != bc {
		return ac
	}
	pa, pb := o.profiles[a], o.profiles[b]
	if pa.firstSeen != pb.firstSeen {
		return pa.firstSeen < pb.firstSeen
	}
	return pa.seq < pb.seq
}

// Split runs a split request. It fails, as the service answers 409, when
// an identity is not on that profile or none would remain.
func (o *OneID) Split(s SplitAction) error {
	p, ok := o.owner[s.Profile]
	if !ok {
		return fmt.Errorf("no profile holds %s", s.Profile)
	}
	root := o.find(p)
	move := map[Identity]bool{}
	for _, id := range s.Identities {
		if q, ok := o.owner[id]; !ok || o.find(q) != root {
			return fmt.Errorf("%s is not on the profile of %s", id, s.Profile)
		}
		move[id] = true
	}
	if len(move) == 0 || len(move) >= len(o.profiles[root].ids) {
		return fmt.Errorf("splitting %d of the %d identities of %s's profile leaves none", len(move), len(o.profiles[root].ids), s.Profile)
	}
	q := o.newProfile(fmt.Sprintf("split:%s@%d", s.Profile, s.At), s.Time.UnixMilli())
	for id := range move {
		delete(o.profiles[root].ids, id)
		o.profiles[q].ids[id] = true
		o.owner[id] = q
	}
	for _, ev := range o.events {
		if ev.owner < 0 || o.find(ev.owner) != root || len(ev.ids) == 0 {
			continue
		}
		alone := true
		for _, id := range ev.ids {
			alone = alone && move[id]
		}
		if alone {
			ev.owner = q
		}
	}
	o.apart = append(o.apart, [2]int{root, q})
	return nil
}

// People returns the people the messages lead to, by key. It fails when
// the stream held a case the contract leaves open (a message with no
// identity that identifies anyone), which a generator must not produce.
func (o *OneID) People() (map[string]OneIDPerson, error) {
	if len(o.open) > 0 {
		return nil, fmt.Errorf("the stream holds cases the contract leaves open: %s", strings.Join(o.open[:min(len(o.open), 5)], "; "))
	}
	byRoot := map[int]*OneIDPerson{}
	for i, p := range o.profiles {
		if p.parent != i {
			continue
		}
		distinct := map[int]bool{}
		for _, c := range p.conflicts {
			distinct[c] = true
		}
		person := &OneIDPerson{MergedAway: p.merged, Conflicts: len(distinct)}
		for id := range p.ids {
			person.Identities = append(person.Identities, id.String())
			if id.Type == IdentityCRM {
				person.Customer = id.Value
			}
		}
		for b := range p.blocked {
			person.Blocked = append(person.Blocked, b)
		}
		person.Key = OneIDKey(person.Identities)
		byRoot[i] = person
	}
	for _, ev := range o.events {
		if ev.owner < 0 {
			continue
		}
		person := byRoot[o.find(ev.owner)]
		person.Events = append(person.Events, ev.e.MessageID)
		if ev.e.Timestamp.After(person.LastSeen) {
			person.LastSeen = ev.e.Timestamp
		}
	}
	// Rows follow the crm_id: the customers row, its orders, their items.
	orderOwner := map[string]*OneIDPerson{}
	for _, c := range o.sortedRows() {
		switch c.Table {
		case TableOrders:
			if c.Deleted() {
				continue
			}
			if p, ok := o.owner[Identity{IdentityCRM, strings.TrimSpace(c.Order.CustomerID)}]; ok {
				person := byRoot[o.find(p)]
				person.Orders = append(person.Orders, c.Key)
				orderOwner[c.Key] = person
			}
		}
	}
	for _, c := range o.sortedRows() {
		if c.Table == TableOrderItems && !c.Deleted() {
			if person := orderOwner[c.Item.OrderID]; person != nil {
				person.Items = append(person.Items, c.Key)
			}
		}
	}
	out := map[string]OneIDPerson{}
	for _, person := range byRoot {
		if person.Customer != "" {
			row := o.rows[TableCustomers+":"+person.Customer]
			if row == nil {
				person.Customer = "" // an SDK-only user: no CRM row
			} else {
				person.Deleted = row.Deleted()
			}
		}
		for _, s := range [][]string{person.Identities, person.Orders, person.Items, person.Events, person.Blocked} {
			sort.Strings(s)
		}
		if _, dup := out[person.Key]; dup {
			return nil, fmt.Errorf("model: two people named %s", person.Key)
		}
		out[person.Key] = *person
	}
	return out, nil
}

func (o *OneID) sortedRows() []*Change {
	keys := make([]string, 0, len(o.rows))
	for k := range o.rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*Change, len(keys))
	for i, k := range keys {
		out[i] = o.rows[k]
	}
	return out
}

// Conflicts returns the conflicts recorded, in the order they happened,
// each naming the people (by key, at the end) it is on.
func (o *OneID) Conflicts() []IdentityConflict {
	key := map[int]string{}
	for i, p := range o.profiles {
		if p.parent == i {
			var ids []string
			for id := range p.ids {
				ids = append(ids, id.String())
			}
			key[i] = OneIDKey(ids)
		}
	}
	out := make([]IdentityConflict, len(o.conflicts))
	for i, c := range o.conflicts {
		c.People = nil
		for _, p := range c.profiles {
			c.People = append(c.People, key[o.find(p)])
		}
		sort.Strings(c.People)
		c.profiles = nil
		out[i] = c
	}
	return out
}

// Survivor returns the founding message of the profile whose customer id
// the person holding id keeps ("event:<id>", "customers:<key>@<lsn>" or
// "split:…"), and those of the profiles merged into it, sorted.
func (o *OneID) Survivor(id Identity) (survivor string, merged []string, ok bool) {
	p, ok := o.owner[id]
	if !ok {
		return "", nil, false
	}
	root := o.find(p)
	for i, q := range o.profiles {
		if i != root && o.find(i) == root {
			merged = append(merged, q.founder)
		}
	}
	sort.Strings(merged)
	return o.profiles[root].founder, merged, true
}

// DiffPeople lists how got differs from want, at most limit lines (0: all).
func DiffPeople(want, got map[string]OneIDPerson, limit int) []string {
	keys := unionKeys(want, got)
	var out []string
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			out = append(out, fmt.Sprintf("%s: missing, want %+v", k, w))
		case !wok:
			out = append(out, fmt.Sprintf("%s: unexpected %+v", k, g))
		case !reflect.DeepEqual(w, g):
			out = append(out, fmt.Sprintf("%s: got %+v, want %+v", k, g, w))
		}
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out
}
