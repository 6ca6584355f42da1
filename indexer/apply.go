package indexer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/IBM/sarama"

	"cdp/customer"
	"cdp/identity"
	"cdp/schema"
	"cdp/store"
	"cdp/wire"
)

// applySources is stage 1: it writes what the source messages say to the
// events index and the row store, dead-letters what cannot be applied, and
// returns the customers whose documents must be rebuilt.
func (ix *Indexer) applySources(ctx context.Context, msgs []*sarama.ConsumerMessage) (dirtySet, error) {
	var events []parsedEvent
	var changes []parsedChange
	var bad []rejected
	for _, m := range msgs {
		switch m.Topic {
		case ix.cfg.Topic(TopicEvents):
			e, err := wire.ParseEvent(m.Value, m.Timestamp)
			if err != nil {
				bad = append(bad, rejected{m, err.Error()})
				continue
			}
			events = append(events, parsedEvent{msg: m, ev: e})
		default:
			c, err := parseChange(strings.TrimPrefix(m.Topic, ix.cfg.TopicPrefix), m.Key, m.Value)
			switch {
			case err != nil:
				bad = append(bad, rejected{m, err.Error()})
			case c != nil:
				changes = append(changes, parsedChange{msg: m, ch: c})
			}
		}
	}
	if err := ix.deadLetter(ctx, bad); err != nil {
		return nil, err
	}
	// Events and CDC changes touch different rows and documents, so they
	// are applied side by side; each half retries on its own.
	var (
		evDirty, chDirty     = dirtySet{}, dirtySet{}
		evRejects, chRejects []rejected
		evErr, chErr         error
		wg                   sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		evErr = ix.step(ctx, "apply_events", func() (err error) {
			evRejects, err = ix.applyEvents(ctx, events, evDirty)
			return err
		})
	}()
	go func() {
		defer wg.Done()
		chErr = ix.step(ctx, "apply_changes", func() (err error) {
			chRejects, err = ix.applyChanges(ctx, changes, chDirty)
			return err
		})
	}()
	wg.Wait()
	if err := errors.Join(evErr, chErr); err != nil {
		return nil, err
	}
	evDirty.add(chDirty)
	return evDirty, ix.deadLetter(ctx, append(evRejects, chRejects...))
}

type parsedEvent struct {
	msg *sarama.ConsumerMessage
	ev  *wire.Event
}

// applyEvents resolves the events' customers, stores each event once (its
// message id is its document id, so a redelivery is a no-op) and folds
// what they say into the customers' profile rows.
func (ix *Indexer) applyEvents(ctx context.Context, events []parsedEvent, dirty dirtySet) ([]rejected, error) {
	events, reqs, rejects := ix.linkable(events)
	if len(events) == 0 {
		return rejects, nil
	}
	if err := ix.aliasCRM(ctx, events, reqs); err != nil {
		return nil, err
	}
	res, err := ix.resolver.Resolve(ctx, reqs)
	if err != nil {
		return nil, err
	}
	cids := res.Customers
	for _, cid := range res.MergedAway {
		dirty.all(cid) // its rebuild moves what it owns to its survivor
	}
	// First the events themselves: only an event that is stored (or was
	// already, for a redelivery) may change its customer's profile.
	refused, r, err := ix.storeEvents(ctx, events, cids)
	if err != nil {
		return nil, err
	}
	rejects = append(rejects, r...)
	r, err = ix.foldProfiles(ctx, events, reqs, cids, refused, dirty)
	if err != nil {
		return nil, err
	}
	return append(rejects, r...), nil
}

// aliasCRM reads an alias's previousId as a crm_id where a profile holds
// it as one (CONTRACT §6), else as the anonymous_id it came as.
func (ix *Indexer) aliasCRM(ctx context.Context, events []parsedEvent, reqs []identity.Request) error {
	var prev []identity.Identity
	for _, pe := range events {
		if pe.ev.Type == "alias" && pe.ev.PreviousID != "" {
			prev = append(prev, identity.Identity{Type: identity.CRMID, Value: identity.Normalize(identity.CRMID, pe.ev.PreviousID)})
		}
	}
	if len(prev) == 0 {
		return nil
	}
	held, err := ix.resolver.Holders(ctx, prev)
	if err != nil {
		return err
	}
	for i, pe := range events {
		if pe.ev.Type != "alias" || pe.ev.PreviousID == "" {
			continue
		}
		crm := identity.Identity{Type: identity.CRMID, Value: identity.Normalize(identity.CRMID, pe.ev.PreviousID)}
		if held[crm.Key()] == "" {
			continue
		}
		anon := identity.Identity{Type: identity.AnonymousID, Value: identity.Normalize(identity.AnonymousID, pe.ev.PreviousID)}
		ids := reqs[i].IDs[:0:0]
		for _, id := range reqs[i].IDs {
			if id == anon && pe.ev.AnonymousID != pe.ev.PreviousID {
				id = crm
			}
			ids = append(ids, id)
		}
		reqs[i].IDs = ix.cfg.Identity.Linking(ids)
	}
	return nil
}

// linkable returns the events with their identities by the identity
// rules. An event whose every id identifies nobody (an anonymousId
// "anonymous" alone) has no profile to attach to: like one with no ids at
// all, it is rejected with its reason.
func (ix *Indexer) linkable(events []parsedEvent) ([]parsedEvent, []identity.Request, []rejected) {
	var rejects []rejected
	reqs := make([]identity.Request, 0, len(events))
	linking := events[:0:0]
	for _, pe := range events {
		ids := identities(ix.cfg.Identity, pe.ev)
		if len(ids) == 0 {
			rejects = append(rejects, rejected{pe.msg, fmt.Sprintf("%s event: its ids identify nobody by the identity rules (userId %q, anonymousId %q)", pe.ev.Type, pe.ev.UserID, pe.ev.AnonymousID)})
			continue
		}
		reqs = append(reqs, identity.Request{IDs: ids, At: pe.ev.Timestamp.UnixMilli(), Source: sourceOf(pe.msg), Message: "event:" + pe.ev.MessageID})
		linking = append(linking, pe)
	}
	return linking, reqs, rejects
}

// storeEvents writes the events, each as a child of its customer, and
// returns the positions of those OpenSearch refused for good.
func (ix *Indexer) storeEvents(ctx context.Context, events []parsedEvent, cids []string) (map[int]bool, []rejected, error) {
	ops := make([]store.Op, len(events))
	docs := make([]map[string]any, len(events))
	for i, pe := range events {
		docs[i] = eventDoc(cids[i], pe.ev)
		ops[i] = store.Op{Action: store.Create, Index: ix.events, ID: pe.ev.MessageID, Routing: cids[i], Body: docs[i]}
	}
	if err := ix.props.prepare(ctx, docs); err != nil {
		return nil, nil, err
	}
	verdicts, err := ix.bulkDemoting(ctx, "apply_events", ops, ix.props)
	if err != nil {
		return nil, nil, err
	}
	refused := map[int]bool{}
	var rejects []rejected
	_, err = ix.judge("event", ops, verdicts, func(i int, reason string) {
		refused[i] = true
		rejects = append(rejects, rejected{events[i].msg, "event refused by OpenSearch: " + reason})
	})
	return refused, rejects, err
}

// foldProfiles writes what the stored events say about their customers,
// one profile update per customer, and marks those customers dirty.
func (ix *Indexer) foldProfiles(ctx context.Context, events []parsedEvent, reqs []identity.Request, cids []string, refused map[int]bool, dirty dirtySet) ([]rejected, error) {
	updates := map[string]*profileUpdate{}
	var order []string
	for i, pe := range events {
		if refused[i] {
			continue
		}
		u := updates[cids[i]]
		if u == nil {
			u = newProfileUpdate()
			updates[cids[i]] = u
			order = append(order, cids[i])
		}
		foldEvent(u, pe.ev, reqs[i].IDs)
	}
	ops := make([]store.Op, 0, len(order))
	for _, cid := range order {
		ops = append(ops, ix.rows.profileOp(cid, updates[cid]))
	}
	verdicts, err := ix.bulk(ctx, "apply_profiles", ops)
	if err != nil {
		return nil, err
	}
	var rejects []rejected
	if _, err := ix.judge("profile", ops, verdicts, func(i int, reason string) {
		for j, pe := range events {
			if cids[j] == order[i] && !refused[j] {
				rejects = append(rejects, rejected{pe.msg, "stored, but its customer's profile was refused by OpenSearch: " + reason})
			}
		}
	}); err != nil {
		return nil, err
	}
	for _, cid := range order {
		dirty.row(cid, rowID(customer.KindProfile, cid))
	}
	return rejects, nil
}

// foldEvent adds what one event says about its customer to u; ids are
// its identities that link (identities), the ones the profile lists.
func foldEvent(u *profileUpdate, e *wire.Event, ids []identity.Identity) {
	ms := e.Timestamp.UnixMilli()
	u.seen(ms)
	for _, id := range ids {
		switch id.Type {
		case identity.CRMID:
			u.crmIDs[id.Value] = true
		case identity.AnonymousID:
			u.anonIDs[id.Value] = true
		}
	}
	if e.Type != "identify" {
		return
	}
	for k, v := range e.Traits {
		name := k
		if !customer.IsProfileField(k) {
			name = wire.SanitizeKey(k)
		}
		if name != "" {
			u.setTrait(name, customer.Trait{V: wire.SanitizeValue(v), TS: ms, MID: e.MessageID})
		}
	}
}

// sourceOf is the Kafka position of a message, for the identity history.
func sourceOf(m *sarama.ConsumerMessage) identity.Source {
	return identity.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
}

func eventDoc(cid string, e *wire.Event) map[string]any {
	doc := map[string]any{
		"event_id": e.MessageID, "customer_id": cid, "type": e.Type, "event": e.Name(),
		schema.JoinField: schema.EventJoin(cid),
		"timestamp":      e.Timestamp.Format("2006-01-02T15:04:05.000Z07:00"),
		"properties":     wire.SanitizeMap(e.Properties),
	}
	for k, v := range map[string]string{"channel": e.Channel(), "user_id": e.UserID, "anonymous_id": e.AnonymousID} {
		if v != "" {
			doc[k] = v
		}
	}
	if len(e.Context) > 0 {
		doc["context"] = e.Context
	}
	return doc
}
