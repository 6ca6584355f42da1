package workload

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// This file generates identity traffic for the OneID acceptance test:
// devices seen alone and then with a user, phone and email traits that
// join people, aliases, shared devices and conflicting crm ids, blocked
// values, people with too many phones or devices, and split requests. The
// stream comes in three phases (see oneid.go on the order the model
// assumes):
//
//  1. people appear: CRM customers with their orders, SDK users, devices
//     browsing alone, blocked values, too many phones or devices;
//  2. they are linked: logins, phone and email traits, aliases, a second
//     user on a device, a CRM row claiming another customer's phone;
//  3. after the splits: messages linking the two sides of a split again,
//     the split-off devices browsing alone, more ordinary traffic.
//
// Messages that compete for one identity are either in different phases
// or share a topic and key, so the people that come out do not depend on
// how the keys of one phase interleave.

// IdentityTraffic is a generated identity stream, the splits to run
// between its phases, and the OneID model that has applied all of it.
type IdentityTraffic struct {
	Messages []Message
	// Barriers are where a phase ends: before producing Messages[b:], a
	// harness lets everything in Messages[:b] be applied, then runs the
	// splits whose At is b.
	Barriers []int
	Splits   []SplitAction
	Stats    IdentityStats
	MaxLSN   int64
	LastTime time.Time
	model    *OneID
}

// IdentityStats counts what an identity stream holds: the scenarios
// planned, then the messages.
type IdentityStats struct {
	CRMCustomers, SDKUsers, LoneDevices            int // plain people
	Logins, PhoneJoins, EmailJoins, Aliases        int // links that merge
	AliasConflicts, SharedDevices, CRMConflicts    int // links that conflict: two crm_ids
	Blocked, TooManyPhones, TooManyDevices, Splits int
	Changes, Events, Duplicates                    int
}

func (s IdentityStats) String() string {
	return fmt.Sprintf("%d CRM customers, %d SDK users, %d lone devices; %d logins, %d phone joins, %d email joins, %d aliases; "+
		"%d alias conflicts, %d shared devices, %d CRM conflicts; %d blocked, %d with a 4th phone, %d with a 51st device, %d splits; "+
		"%d changes, %d events (%d duplicates)",
		s.CRMCustomers, s.SDKUsers, s.LoneDevices, s.Logins, s.PhoneJoins, s.EmailJoins, s.Aliases,
		s.AliasConflicts, s.SharedDevices, s.CRMConflicts, s.Blocked, s.TooManyPhones, s.TooManyDevices, s.Splits,
		s.Changes, s.Events, s.Duplicates)
}

// Model is the OneID model of the stream, with the splits applied.
func (t *IdentityTraffic) Model() *OneID { return t.model }

// Phases returns the messages of each phase.
func (t *IdentityTraffic) Phases() [][]Message {
	var out [][]Message
	from := 0
	for _, b := range append(append([]int{}, t.Barriers...), len(t.Messages)) {
		out = append(out, t.Messages[from:b])
		from = b
	}
	return out
}

// IdentityKeySpan is how far apart the bases of two identity streams must
// be to share no identity, row or message id: a stream mints about 8 ids
// a person, so up to 100,000 people each, at bases 0, IdentityKeySpan, …
// up to 8×IdentityKeySpan (crm ids 7xxxxxxxx and SDK user ids 8xxxxxxxx
// must not meet).
const IdentityKeySpan = 10_000_000

// NewIdentityTraffic generates a reproducible identity stream about
// roughly the given number of people (about 5 messages each).
func NewIdentityTraffic(seed uint64, people int) *IdentityTraffic {
	return NewIdentityTrafficAt(seed, people, 0)
}

// NewIdentityTrafficAt is NewIdentityTraffic with every id moved by base.
// Its crm ids (7xxxxxxxx), phones (15xxxxxxxxx), emails (oneid…), devices
// (idev-…) and message ids (oid…) are apart from NewDatasetAt's.
func NewIdentityTrafficAt(seed uint64, people, base int) *IdentityTraffic {
	g := &idGen{r: rand.New(rand.NewPCG(seed, seed^0x51ed27a3c4b1f00d)), base: base}
	g.run(people)
	return g.encode()
}

// Blocked values the generator uses; many people share them, so a model
// or indexer that let them link would merge those people.
var (
	blockedDevices = []string{"unknown", "null", "undefined", "none", "anonymous", "0", "000-000", "NULL"}
	blockedPhones  = []string{"00000000000", "11111111111", "+86 88888888888", "-", "0"}
	blockedEmails  = []string{"null", "none", "UNKNOWN", "undefined", " "}
)

type idStep struct {
	change *Change
	event  *Event
}

func (s idStep) queue() string {
	if s.change != nil {
		return topicOf(s.change.Table) + "\x00" + s.change.Key
	}
	key := s.event.UserID
	if key == "" {
		key = s.event.AnonymousID
	}
	return "events\x00" + key
}

type idSplit struct {
	profile Identity
	ids     []Identity
}

type idGen struct {
	r      *rand.Rand
	base   int
	phases [3][]idStep
	splits []idSplit // run after phase 2
	n      int       // ids minted
	stats  IdentityStats
}

func (g *idGen) chance(p float64) bool  { return g.r.Float64() < p }
func (g *idGen) pick(s []string) string { return s[g.r.IntN(len(s))] }
func (g *idGen) mint() int              { g.n++; return g.base + g.n }

func (g *idGen) crmID() string  { return strconv.Itoa(700_000_000 + g.mint()) }
func (g *idGen) sdkID() string  { return strconv.Itoa(800_000_000 + g.mint()) }
func (g *idGen) device() string { return fmt.Sprintf("idev-%d", g.mint()) }
func (g *idGen) phone() string  { return fmt.Sprintf("15%09d", g.mint()) }
func (g *idGen) email() string  { return fmt.Sprintf("OneID%d@Example.com", g.mint()) }

// phoneForm writes an 11-digit mobile number as people type it.
func (g *idGen) phoneForm(digits string) string {
	switch g.r.IntN(4) {
	case 0:
		return " " + digits + " "
	case 1:
		return "+86 " + digits
	case 2:
		return "+86-" + digits[:3] + "-" + digits[3:7] + "-" + digits[7:]
	}
	return digits
}

func (g *idGen) emailForm(e string) string {
	switch g.r.IntN(3) {
	case 0:
		return "  " + e
	case 1:
		return e + " "
	}
	return e
}

func (g *idGen) add(phase int, s idStep) {
	g.phases[phase] = append(g.phases[phase], s)
	if s.event != nil && g.chance(0.03) {
		g.phases[phase] = append(g.phases[phase], s) // a redelivery, after its original (same key)
		g.stats.Duplicates++
	}
}

func (g *idGen) ev(phase int, typ, user, device string, traits map[string]any) *Event {
	e := &Event{Type: typ, MessageID: fmt.Sprintf("oid%d-%d", g.base, g.mint()), UserID: user, AnonymousID: device, Channel: g.pick(channels)}
	switch typ {
	case "identify":
		e.Traits = traits
		if e.Traits == nil {
			e.Traits = map[string]any{}
		}
		if g.chance(0.5) {
			e.Traits["city"] = g.pick(cities)
		}
	case "track":
		e.Name = g.pick(trackNames)
		e.Properties = map[string]any{"sku": fmt.Sprintf("p-%d", g.r.IntN(500)), "category": g.pick(categories)}
	case "page":
		e.Properties = map[string]any{"path": fmt.Sprintf("/p/%d", g.r.IntN(100))}
	}
	g.add(phase, idStep{event: e})
	return e
}

// browse plans 1–n track or page events of a user and/or device.
func (g *idGen) browse(phase int, user, device string, n int) {
	for range 1 + g.r.IntN(n) {
		typ := "track"
		if g.chance(0.25) {
			typ = "page"
		}
		g.ev(phase, typ, user, device, nil)
	}
}

func (g *idGen) alias(phase int, previous, user string) {
	e := &Event{Type: "alias", MessageID: fmt.Sprintf("oid%d-%d", g.base, g.mint()), UserID: user, PreviousID: previous, Channel: g.pick(channels)}
	g.add(phase, idStep{event: e})
}

type idCustomer struct {
	key, phone, email string
	created           time.Time
}

// customer plans a CRM customer's row in the given phase, sometimes
// updated, and its orders with their items in phase 1 (so some come
// before their customer).
func (g *idGen) customer(phase int, phone, email string) idCustomer {
	c := idCustomer{key: g.crmID(), phone: phone, email: email,
		created: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(g.r.IntN(600*24)) * time.Hour)}
	g.row(phase, c, "c", g.pick(names))
	if g.chance(0.2) {
		g.row(phase, c, "u", g.pick(names)) // the same identities again: links nothing new
	}
	for range g.r.IntN(3) {
		g.order(0, c.key)
	}
	g.stats.CRMCustomers++
	return c
}

func (g *idGen) newCustomer() idCustomer {
	return g.customer(0, g.phoneForm(g.phone()), g.emailForm(g.email()))
}

func (g *idGen) row(phase int, c idCustomer, op, name string) {
	r := &CustomerRow{Name: name, Phone: c.phone, Email: c.email, City: g.pick(cities), MemberLevel: g.pick(levels),
		StoreID: fmt.Sprintf("s-%02d", g.r.IntN(20)), CreatedAt: c.created} // UpdatedAt: when it is streamed
	g.add(phase, idStep{change: &Change{Table: TableCustomers, Key: c.key, Op: op, Customer: r}})
	g.stats.Changes++
}

func (g *idGen) order(phase int, customer string) {
	key := strconv.Itoa(710_000_000 + g.mint())
	o := &OrderRow{CustomerID: customer, OrderNo: "ONO-" + key, StoreID: fmt.Sprintf("s-%02d", g.r.IntN(20)), Status: "paid",
		TotalCents: 100 + g.r.Int64N(100000), CreatedAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(g.r.IntN(30*24)) * time.Hour)}
	if g.chance(0.3) {
		o.Status = "created"
	} else {
		o.PaidAt = o.CreatedAt.Add(time.Minute)
	}
	g.add(phase, idStep{change: &Change{Table: TableOrders, Key: key, Op: "c", Order: o}})
	g.stats.Changes++
	for range 1 + g.r.IntN(2) {
		it := &ItemRow{OrderID: key, SKU: fmt.Sprintf("p-%d", g.r.IntN(500)), ProductName: g.pick(products), Category: g.pick(categories),
			Quantity: 1 + g.r.IntN(3), PriceCents: 50 + g.r.Int64N(50000)}
		g.add(phase, idStep{change: &Change{Table: TableOrderItems, Key: strconv.Itoa(720_000_000 + g.mint()), Op: "c", Item: it}})
		g.stats.Changes++
	}
}

// sdkUser returns a user id known only from the SDK; seen says whether it
// has browsed in phase 1 (so that a later link merges two profiles).
func (g *idGen) sdkUser(seen bool) string {
	u := g.sdkID()
	if seen {
		g.browse(0, u, "", 2)
	}
	g.stats.SDKUsers++
	return u
}

func (g *idGen) loneDevice() string {
	d := g.device()
	g.browse(0, "", d, 3)
	g.stats.LoneDevices++
	return d
}

func (g *idGen) run(people int) {
	for range max(1, people/2000) {
		g.tooManyDevices()
	}
	for range people {
		switch x := g.r.Float64(); {
		case x < 0.22:
			c := g.newCustomer()
			var dev string
			if g.chance(0.5) {
				dev = g.device()
			}
			g.browse(0, c.key, dev, 3)
			if g.chance(0.3) {
				g.ev(1, "identify", c.key, dev, nil)
			}
			if g.chance(0.3) {
				g.browse(2, c.key, dev, 2)
			}
		case x < 0.28:
			d := g.loneDevice()
			if g.chance(0.5) {
				g.browse(2, "", d, 2)
			}
		case x < 0.42:
			g.login()
		case x < 0.50:
			g.phoneJoin()
		case x < 0.55:
			g.emailJoin()
		case x < 0.61:
			d := g.loneDevice()
			u := g.sdkUser(true)
			g.alias(1, d, u)
			g.browse(1, u, "", 2)
			g.stats.Aliases++
		case x < 0.64:
			c := g.newCustomer()
			u := g.sdkUser(false)
			g.alias(1, c.key, u) // c.key is a crm_id by then: two crm_ids
			g.browse(1, u, "", 2)
			g.stats.AliasConflicts++
		case x < 0.69:
			g.sharedDevice()
		case x < 0.73:
			a := g.newCustomer()
			g.customer(1, g.phoneForm(digitsOf(a.phone)), g.emailForm(g.email())) // a's phone: two crm_ids
			g.stats.CRMConflicts++
		case x < 0.81:
			g.blocked()
		case x < 0.83:
			g.tooManyPhones()
		case x < 0.87:
			g.splitDevice()
		case x < 0.90:
			g.splitPhone()
		default:
			g.sdkUser(true)
		}
	}
}

// digitsOf returns the 11 digits of a phone written by phoneForm.
func digitsOf(p string) string {
	var out []byte
	for i := 0; i < len(p); i++ {
		if p[i] >= '0' && p[i] <= '9' {
			out = append(out, p[i])
		}
	}
	s := string(out)
	return s[len(s)-11:]
}

// login: a device browses alone, then a user (a CRM customer or an SDK
// user, seen before or not) logs in on it.
func (g *idGen) login() {
	d := g.loneDevice()
	var u string
	traits := map[string]any{}
	if g.chance(0.6) {
		c := g.newCustomer()
		u = c.key
		if g.chance(0.5) {
			traits["phone"] = g.phoneForm(digitsOf(c.phone)) // the same person's phone: nothing new
		}
	} else {
		u = g.sdkUser(g.chance(0.5))
	}
	g.ev(1, "identify", u, d, traits)
	g.browse(1, u, d, 2)
	g.stats.Logins++
}

// phoneJoin: a new device identifies with a CRM customer's phone.
func (g *idGen) phoneJoin() {
	c := g.newCustomer()
	d := g.device()
	g.ev(1, "identify", "", d, map[string]any{"phone": g.phoneForm(digitsOf(c.phone))})
	g.browse(1, "", d, 2)
	g.stats.PhoneJoins++
}

// emailJoin: two devices identify with one email (in two cases): one
// anonymous person, whose survivor is the device seen first.
func (g *idGen) emailJoin() {
	e := g.email()
	d1 := g.device()
	g.ev(0, "identify", "", d1, map[string]any{"email": e})
	g.browse(0, "", d1, 2)
	d2 := g.loneDevice()
	g.ev(1, "identify", "", d2, map[string]any{"email": " " + lowerASCII(e)})
	g.stats.EmailJoins++
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// sharedDevice: a device used by one customer is then used by another
// user: two crm_ids, so a conflict on both and no merge.
func (g *idGen) sharedDevice() {
	a := g.newCustomer()
	d := g.device()
	g.browse(0, a.key, d, 2)
	var b string
	if g.chance(0.5) {
		b = g.newCustomer().key
	} else {
		b = g.sdkUser(true)
	}
	g.browse(1, b, d, 2)
	g.stats.SharedDevices++
}

// blocked: people whose rows and messages carry blocked values, shared by
// many: they must stay apart.
func (g *idGen) blocked() {
	var u string
	if g.chance(0.5) {
		phone, email := g.phoneForm(g.phone()), g.emailForm(g.email())
		if g.chance(0.5) {
			phone = g.pick(blockedPhones)
		} else {
			email = g.pick(blockedEmails)
		}
		u = g.customer(0, phone, email).key
	} else {
		u = g.sdkUser(false)
	}
	traits := map[string]any{}
	if g.chance(0.5) {
		traits["phone"] = g.pick(blockedPhones)
	}
	if g.chance(0.5) {
		traits["email"] = g.pick(blockedEmails)
	}
	g.ev(g.r.IntN(3), "identify", u, g.pick(blockedDevices), traits)
	g.browse(g.r.IntN(3), u, g.pick(blockedDevices), 2)
	g.stats.Blocked++
}

// tooManyPhones: an SDK user identifies with four or five phones, in
// order on its key: the fourth and later ones are conflicts.
func (g *idGen) tooManyPhones() {
	u := g.sdkUser(false)
	phase := g.r.IntN(2)
	for range 4 + g.r.IntN(2) {
		g.ev(phase, "identify", u, "", map[string]any{"phone": g.phoneForm(g.phone())})
	}
	g.stats.TooManyPhones++
}

// tooManyDevices: one user on 51 devices, in order on its key.
func (g *idGen) tooManyDevices() {
	u := g.sdkUser(false)
	for range 51 {
		g.ev(0, "track", u, g.device(), nil)
	}
	g.stats.TooManyDevices++
}

// splitDevice: a device browses alone, a customer logs in on it, the
// device is split off again (its lone browsing goes with it); afterwards
// the customer on that device is a conflict and the device alone is the
// split-off person.
func (g *idGen) splitDevice() {
	d := g.loneDevice()
	c := g.newCustomer()
	g.ev(1, "identify", c.key, d, nil)
	g.browse(1, c.key, d, 2)
	g.splits = append(g.splits, idSplit{Identity{IdentityCRM, c.key}, []Identity{{IdentityAnonymous, d}}})
	g.ev(2, "track", c.key, d, nil)
	g.browse(2, "", d, 2)
	g.stats.Splits++
}

// splitPhone: a new device identifies with a customer's phone, the phone
// and the device are split off; a later update of the customer's row
// links its crm_id with the phone again: a conflict.
func (g *idGen) splitPhone() {
	c := g.newCustomer()
	d := g.device()
	g.ev(1, "identify", "", d, map[string]any{"phone": g.phoneForm(digitsOf(c.phone))})
	g.browse(1, "", d, 2)
	g.splits = append(g.splits, idSplit{Identity{IdentityCRM, c.key},
		[]Identity{{IdentityPhone, "+86" + digitsOf(c.phone)}, {IdentityAnonymous, d}}})
	g.row(2, c, "u", g.pick(names))
	g.browse(2, "", d, 1)
	g.stats.Splits++
}

// encode interleaves each phase's keys, stamps times and positions in
// stream order, encodes the messages and applies them, with the splits
// after phase 2, to the model.
func (g *idGen) encode() *IdentityTraffic {
	t := &IdentityTraffic{model: NewOneID()}
	clock := Epoch.Add(-24 * time.Hour) // before NewDataset's epoch: a harness may stream it first
	var lsn int64
	var phase2End time.Time
	for k, steps := range g.phases {
		steps = interleave(steps, idStep.queue, g.r)
		for _, s := range steps {
			clock = clock.Add(time.Second)
			at := clock.Add(time.Duration(g.r.IntN(1000)) * time.Millisecond).Truncate(time.Millisecond)
			var m Message
			if c := s.change; c != nil {
				lsn += 10
				c.LSN, c.TsMs = lsn, at.UnixMilli()
				if c.Customer != nil {
					c.Customer.UpdatedAt = at
				}
				m = changeMessage(c)
			} else {
				if s.event.Timestamp.IsZero() { // a redelivery keeps its original's
					s.event.Timestamp = at
				}
				m = EventMessage(s.event)
				g.stats.Events++
			}
			t.Messages = append(t.Messages, m)
			t.LastTime = at
		}
		if k < len(g.phases)-1 {
			t.Barriers = append(t.Barriers, len(t.Messages))
		}
		if k == 1 {
			phase2End = clock.Add(time.Second)
			clock = phase2End.Add(time.Second) // the splits run in between
		}
	}
	for i, s := range g.splits { // between phases 2 and 3, on the stream's clock
		t.Splits = append(t.Splits, SplitAction{At: t.Barriers[1], Time: phase2End.Add(time.Duration(i+1) * time.Millisecond),
			Profile: s.profile, Identities: s.ids})
	}
	t.MaxLSN, t.Stats = lsn, g.stats
	if err := t.model.ApplyStream(t.Messages, t.Splits); err != nil {
		panic("identity traffic: " + err.Error()) // the generator planned a split the model refuses: a bug here
	}
	return t
}

// interleave returns items in a random order that keeps the relative
// order of the items of each queue: one way the partitions of a topic,
// and the topics, can be consumed.
func interleave[T any](items []T, queue func(T) string, r *rand.Rand) []T {
	queues := map[string][]T{}
	var slots []string
	for _, it := range items {
		q := queue(it)
		queues[q] = append(queues[q], it)
		slots = append(slots, q)
	}
	r.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	out := make([]T, 0, len(items))
	for _, q := range slots {
		out = append(out, queues[q][0])
		queues[q] = queues[q][1:]
	}
	return out
}

// InterleaveByKey returns msgs in another order, chosen by seed, that
// keeps the order of the messages of each topic and key (what Kafka
// keeps): another way an indexer may see one phase.
func InterleaveByKey(msgs []Message, seed uint64) []Message {
	return interleave(msgs, func(m Message) string { return m.Topic + "\x00" + string(m.Key) },
		rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d)))
}
