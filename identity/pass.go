package identity

import (
	"slices"
	"sort"
)

// Request is the identities one message carries, put as Rules.Linking has
// them (normalized, in priority order, without blocked values), with the
// message's time and position.
type Request struct {
	IDs []Identity
	// At is the message time in ms: the first seen of a profile it
	// creates, and of the survivor of a merge it causes.
	At     int64
	Source Source
	// Message names the message itself, wherever Kafka holds it: "event:"
	// and an event's messageId, or a CDC change's table, key and position.
	// A message records its conflict once: a redelivery or a replay of it
	// records none again, while two messages linking the same identities
	// each record theirs (CONTRACT §6: a conflict per message). Empty, a
	// conflict is told apart by what it says alone.
	Message string
}

// Merge is one merge a pass decided: Losers joined Survivor.
type Merge struct {
	Survivor string
	Losers   []string
	// Identities are the keys the losers brought.
	Identities []string
	At         int64
	Source     Source
}

// claimOp is one identity record to create: the identity and its
// customer.
type claimOp struct {
	Identity   Identity
	CustomerID string
}

// plan is what the in-order pass decides for the requests of one call.
type plan struct {
	// Customers holds each request's customer, "" for one with no
	// identities.
	Customers []string
	// Claims are the identities the pass gives to a customer, new ones
	// and the first ones of customers it mints, in request order.
	Claims []claimOp
	// People are the persons the pass changed or minted, by customer id.
	People map[string]*Person
	// Rewrites are identity keys whose holder merged away: their records
	// now name the survivor.
	Rewrites map[string]string
	Merges   []Merge
	// Conflicts are the conflicts recorded, once each.
	Conflicts []Conflict
	// Forwarded are the merged-away customers the pass went through.
	Forwarded map[string]bool
}

// pass is the state of one in-order pass.
type pass struct {
	rules  *Rules
	known  map[string]string  // identity key → customer id, as the index has it
	people map[string]*Person // customer id → person, as read
	newID  func() string
	p      plan
	// byOwner lists the keys known per customer, made when first needed
	// (for a customer with no person yet).
	byOwner map[string][]string
}

// assign is the in-order pass (CONTRACT §6): it resolves the requests one
// after the other against known (identity key → customer id; "" or absent
// for a free key) and people (the persons of the customers known names,
// and of the survivors they were merged into), as if each request had come
// alone after the ones before it. For each request:
//
//   - its owners are the profiles (followed to their survivors) holding
//     its identities, and its fresh identities those nobody holds;
//   - no owner: a profile is minted for it, and its fresh identities join
//     it as far as most-per-profile allows;
//   - the owners and the fresh identities fit in one profile (no type over
//     its most-per-profile, no two sides of a split): the owners merge into
//     the survivor (the one holding a crm_id, else the first seen, then the
//     smallest customer id) and the fresh identities join it;
//   - else nothing merges: the request goes to the profile of its first
//     (highest-priority) identity, minted when that one is fresh; its fresh
//     identities join that profile as far as they fit, and a conflict is
//     recorded on every profile involved.
//
// known and people are only read.
func assign(rules *Rules, reqs []Request, known map[string]string, people map[string]*Person, newID func() string) plan {
	s := &pass{rules: rules, known: map[string]string{}, people: people, newID: newID,
		p: plan{Customers: make([]string, len(reqs)), People: map[string]*Person{}, Rewrites: map[string]string{}, Forwarded: map[string]bool{}}}
	for k, v := range known {
		if v != "" {
			s.known[k] = v
		}
	}
	s.repair()
	for i, req := range reqs {
		s.p.Customers[i] = s.resolve(req)
	}
	return s.p
}

// repair makes the persons agree with the identity records, the truth of
// who holds an identity: a writer that lost a race halfway (its merged-away
// persons written, its survivor not; see Resolver.writePeople) leaves a
// survivor that lacks what its merged-away persons name it for. Every key
// known leads, through merges, to a person that holds it, no person holds
// a key the records give to another, and every merged-away person is in
// its survivor's merged ids.
func (s *pass) repair() {
	cids := make([]string, 0, len(s.people))
	for cid := range s.people {
		cids = append(cids, cid)
	}
	sort.Strings(cids)
	for _, cid := range cids {
		p := s.people[cid]
		if p.MergedInto != "" {
			if r := s.root(cid); r != cid && !slices.Contains(s.view(r).MergedIDs, cid) {
				s.person(r).MergedIDs = append(s.person(r).MergedIDs, cid)
			}
			continue
		}
		for _, k := range p.Identities {
			if owner, ok := s.known[k]; ok && s.root(owner) != cid {
				q := s.person(cid)
				q.Identities = slices.DeleteFunc(q.Identities, func(x string) bool { return x == k })
			}
		}
	}
	keys := make([]string, 0, len(s.known))
	for k := range s.known {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if r := s.root(s.known[k]); !s.view(r).holds(k) {
			q := s.person(r)
			q.Identities = append(q.Identities, k)
		}
	}
}

// person returns the pass's own copy of a customer's person, one with no
// record (a customer from before people were kept) being made up of the
// keys known to name it.
func (s *pass) person(cid string) *Person {
	if p := s.p.People[cid]; p != nil {
		return p
	}
	var p *Person
	if stored := s.people[cid]; stored != nil {
		p = stored.clone()
	} else {
		if s.byOwner == nil {
			s.byOwner = map[string][]string{}
			for k, owner := range s.known {
				s.byOwner[owner] = append(s.byOwner[owner], k)
			}
		}
		p = &Person{CustomerID: cid, Identities: slices.Clone(s.byOwner[cid])}
		sort.Strings(p.Identities)
	}
	s.p.People[cid] = p
	return p
}

// view returns a person without taking a copy.
func (s *pass) view(cid string) *Person {
	if p := s.p.People[cid]; p != nil {
		return p
	}
	if p := s.people[cid]; p != nil {
		return p
	}
	return s.person(cid)
}

// root follows merges to the profile that holds cid's identities now.
// Every merged-away profile it passes is noted (plan.Forwarded): what is
// still under its id must move to its survivor, even when the merge was
// written by an earlier round or writer whose own marking never came.
func (s *pass) root(cid string) string {
	for range 64 {
		p := s.view(cid)
		if p.MergedInto == "" {
			return cid
		}
		s.p.Forwarded[cid] = true
		cid = p.MergedInto
	}
	return cid
}

func (s *pass) resolve(req Request) string {
	ids := dedup(req.IDs)
	if len(ids) == 0 {
		return ""
	}
	var owners []string
	var fresh []Identity
	for _, id := range ids {
		cid := s.known[id.Key()]
		if cid == "" {
			fresh = append(fresh, id)
			continue
		}
		if r := s.root(cid); !slices.Contains(owners, r) {
			owners = append(owners, r)
		}
	}
	if len(owners) == 0 {
		t := s.mint(req.At)
		if left := s.attach(t, fresh); len(left) > 0 {
			s.conflict(req, ReasonMostPerProfile+left[0].Type, []string{t}, ids)
		}
		return t
	}
	if reason := s.whyNot(owners, fresh); reason == "" {
		t := s.survivor(owners)
		var losers []string
		for _, o := range owners {
			if o != t {
				losers = append(losers, o)
			}
		}
		if len(losers) > 0 {
			s.merge(t, losers, req)
		}
		s.attach(t, fresh)
		s.seen(t, req.At)
		return t
	} else {
		t := ""
		if cid := s.known[ids[0].Key()]; cid != "" {
			t = s.root(cid)
		} else {
			t = s.mint(req.At)
		}
		s.attach(t, fresh)
		s.seen(t, req.At)
		involved := slices.Clone(owners)
		if !slices.Contains(involved, t) {
			involved = append(involved, t)
		}
		s.conflict(req, reason, involved, ids)
		return t
	}
}

func dedup(ids []Identity) []Identity {
	out := make([]Identity, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// mint makes a new profile first seen at at.
func (s *pass) mint(at int64) string {
	cid := s.newID()
	s.p.People[cid] = &Person{CustomerID: cid, FirstSeen: at}
	return cid
}

// seen lowers a profile's first seen to at.
func (s *pass) seen(cid string, at int64) {
	if p := s.view(cid); at > 0 && (p.FirstSeen == 0 || at < p.FirstSeen) {
		s.person(cid).FirstSeen = at
	}
}

// attach gives the fresh identities to cid as far as most-per-profile
// allows, and returns those that did not fit.
func (s *pass) attach(cid string, fresh []Identity) (left []Identity) {
	for _, id := range fresh {
		k := id.Key()
		if s.known[k] != "" {
			continue
		}
		// A person may list an identity nobody has claimed yet: a writer
		// that reserved it there was stopped (killed) before its claim.
		// The reservation is taken up, not counted a second time.
		if !s.view(cid).holds(k) {
			if s.view(cid).count(id.Type) >= s.rules.MaxPerProfile(id.Type) {
				left = append(left, id)
				continue
			}
			p := s.person(cid)
			p.Identities = append(p.Identities, k)
		}
		s.known[k] = cid
		s.p.Claims = append(s.p.Claims, claimOp{Identity: id, CustomerID: cid})
	}
	return left
}

// whyNot returns why the owners and the fresh identities do not fit in
// one profile ("" when they do): a type over its most-per-profile, or two
// owners a split keeps apart.
func (s *pass) whyNot(owners []string, fresh []Identity) string {
	counts := map[string]int{}
	var types []string
	add := func(t string, n int) {
		if _, ok := counts[t]; !ok {
			types = append(types, t)
		}
		counts[t] += n
	}
	for _, id := range fresh {
		if !slices.ContainsFunc(owners, func(o string) bool { return s.view(o).holds(id.Key()) }) {
			add(id.Type, 1) // else reserved on an owner, counted there
		}
	}
	for _, o := range owners {
		for _, k := range s.view(o).Identities {
			if id, ok := ParseKey(k); ok {
				add(id.Type, 1)
			}
		}
	}
	// The reason names the highest-priority type over its limit.
	sort.SliceStable(types, func(i, j int) bool { return s.rules.rank(types[i]) < s.rules.rank(types[j]) })
	for _, t := range types {
		if counts[t] > s.rules.MaxPerProfile(t) {
			return ReasonMostPerProfile + t
		}
	}
	for i, a := range owners {
		for _, b := range owners[i+1:] {
			if s.apart(a, b) {
				return ReasonSplit
			}
		}
	}
	return ""
}

// apart reports whether a split keeps the profiles a and b apart: one of
// them, or a profile merged into it, was split from the other's side.
func (s *pass) apart(a, b string) bool {
	for _, x := range s.view(a).Apart {
		if s.root(x) == b {
			return true
		}
	}
	for _, x := range s.view(b).Apart {
		if s.root(x) == a {
			return true
		}
	}
	return false
}

// survivor is the profile a merge of the owners keeps: the one holding a
// crm_id, else the first seen, then the smallest customer id.
func (s *pass) survivor(owners []string) string {
	best := owners[0]
	better := func(a, b string) bool {
		pa, pb := s.view(a), s.view(b)
		ca, cb := pa.count(CRMID) > 0, pb.count(CRMID) > 0
		if ca != cb {
			return ca
		}
		fa, fb := pa.FirstSeen, pb.FirstSeen
		if fa != fb && fa > 0 && fb > 0 {
			return fa < fb
		}
		if (fa > 0) != (fb > 0) {
			return fa > 0
		}
		return a < b
	}
	for _, o := range owners[1:] {
		if better(o, best) {
			best = o
		}
	}
	return best
}

// merge moves everything OneID knows of the losers to the survivor.
func (s *pass) merge(survivor string, losers []string, req Request) {
	t := s.person(survivor)
	m := Merge{Survivor: survivor, Losers: losers, At: req.At, Source: req.Source}
	for _, l := range losers {
		lp := s.person(l)
		for _, k := range lp.Identities {
			t.Identities = addOnce(t.Identities, k)
			s.known[k] = survivor
			s.p.Rewrites[k] = survivor
			m.Identities = append(m.Identities, k)
		}
		t.MergedIDs = addOnce(t.MergedIDs, l)
		t.MergedIDs = addOnce(t.MergedIDs, lp.MergedIDs...)
		t.Apart = addOnce(t.Apart, lp.Apart...)
		if lp.FirstSeen > 0 && (t.FirstSeen == 0 || lp.FirstSeen < t.FirstSeen) {
			t.FirstSeen = lp.FirstSeen
		}
		for _, c := range lp.Conflicts {
			t.addConflict(c)
		}
		// The merged-away person keeps the identities it held: until the
		// survivor is written, they say what the survivor must take in
		// (repair), should this writer lose its race halfway.
		lp.MergedInto = survivor
		lp.MergedIDs = nil
	}
	s.p.Merges = append(s.p.Merges, m)
}

// conflict records one conflict on every profile involved.
func (s *pass) conflict(req Request, reason string, involved []string, ids []Identity) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = id.Key()
	}
	cids := slices.Clone(involved)
	sort.Strings(cids)
	c := Conflict{Reason: reason, CustomerIDs: cids, Identities: keys, Source: req.Source, Message: req.Message}
	recorded := false
	for _, cid := range involved {
		if !hasConflict(s.view(cid), c) {
			s.person(cid).addConflict(c)
			recorded = true
		}
	}
	if recorded {
		s.p.Conflicts = append(s.p.Conflicts, c)
	}
}

func hasConflict(p *Person, c Conflict) bool {
	for _, have := range p.Conflicts {
		if have.key() == c.key() {
			return true
		}
	}
	return false
}
