package indexer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"

	"cdp/customer"
	"cdp/identity"
	"cdp/membership"
	"cdp/schema"
	"cdp/store"
)

// materialize is stage 2: it rebuilds the document of every customer
// marked dirty in the batch, one write per customer however many markers
// the batch holds. While the indexer is behind, the rebuilds lane takes
// large batches, so a customer changed many times is rebuilt once.
func (ix *Indexer) materialize(ctx context.Context, msgs []*sarama.ConsumerMessage) error {
	rb := &rebuild{markers: map[string][]*sarama.ConsumerMessage{}, changed: dirtySet{}, purge: map[string]int64{}, written: map[string]bool{}}
	var cids []string
	var rejects []rejected
	for _, m := range msgs {
		marked, rows, err := markedCustomers(m)
		if err != nil {
			rejects = append(rejects, rejected{m, err.Error()})
			continue
		}
		for _, cid := range marked {
			if _, ok := rb.markers[cid]; !ok {
				cids = append(cids, cid)
			}
			rb.markers[cid] = append(rb.markers[cid], m)
			list, ok := rows[cid]
			if !ok {
				rb.changed.all(cid)
			}
			for _, rid := range list {
				rb.changed.row(cid, rid)
			}
		}
	}
	// The chunks are worked on side by side: a chunk is a chain of
	// requests (versions, people, rows, tags, the write), each waiting on
	// OpenSearch, so one at a time left OpenSearch's cores idle while the
	// rebuilds fell behind a steady load. Chunks hold distinct customers,
	// and every write is fenced, so they do not depend on each other; rows
	// one chunk moves to a customer of another mark it dirty again.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ix.cfg.RebuildWorkers)
	var mu sync.Mutex
	for chunk := range slices.Chunk(cids, rebuildChunk) {
		g.Go(func() error {
			return ix.step(gctx, "materialize", func() error {
				r, err := ix.writeDocuments(gctx, rb, chunk)
				if err == nil {
					mu.Lock()
					rejects = append(rejects, r...)
					mu.Unlock()
				}
				return err
			})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// A purge refreshes the index and deletes by query: once a batch,
	// before its markers are committed.
	if err := ix.step(ctx, "purge_events", func() error { return ix.purgeEvents(ctx, rb.purge) }); err != nil {
		return err
	}
	// Membership refreshes the documents before it evaluates them, when it
	// has anything to evaluate: one refresh a round serves both.
	searchable, err := ix.membershipChanged(ctx, rb)
	if err != nil {
		return err
	}
	if len(cids) > 0 && !searchable && !ix.behind() {
		// Searchable now rather than at the index's next refresh (up to
		// its interval later): a marketer's filter sees a change within
		// one round. In a backfill the interval does, once per second.
		if err := ix.step(ctx, "refresh_documents", func() error { return ix.st.Refresh(ctx, ix.customers) }); err != nil {
			return err
		}
	}
	return ix.deadLetter(ctx, rejects)
}

// rebuild is one batch of markers: who marked each customer, and what
// changed for it (dirtySet: nil is "read everything"). Its chunks are
// rebuilt side by side: markers and changed are only read then, and mu
// guards the rest.
type rebuild struct {
	markers map[string][]*sarama.ConsumerMessage
	changed dirtySet

	mu sync.Mutex
	// refreshed: the row store and the people index were refreshed in
	// this batch. A rebuild that searches them (one with no manifest to
	// go by) needs them refreshed since its markers were sent; everything
	// the batch's markers ask for was written before they were sent, so
	// one refresh serves every chunk (a chunk that moves rows refreshes
	// again, see writeRound). A refresh per chunk was about a third of
	// OpenSearch's time in a backfill, and under a steady load the
	// refresh alone took most of a rebuild.
	refreshed bool
	// purge holds the deleted customers whose events go, and when each
	// was deleted: purged once a batch, after its documents are written.
	purge map[string]int64
	// written are the customers whose documents the batch wrote or
	// deleted: their membership is evaluated after the writes; merges
	// are the OneID merges among them (membership.go).
	written map[string]bool
	merges  membership.Merges
}

// eventFor reports whether an event may have come for cid in this batch:
// its profile row changed, or the marker names no rows.
func (rb *rebuild) eventFor(cid string) bool {
	rows, ok := rb.changed[cid]
	return !ok || rows == nil || rows[rowID(customer.KindProfile, cid)]
}

// refresh makes the row store and people searchable up to now, once a batch.
func (ix *Indexer) refresh(ctx context.Context, rb *rebuild) error {
	rb.mu.Lock() // the other chunks wait for the one refresh
	defer rb.mu.Unlock()
	if rb.refreshed {
		return nil
	}
	defer ix.m.since("refresh", time.Now())
	if err := ix.st.Refresh(ctx, ix.rows.index, ix.people); err != nil {
		return fmt.Errorf("documents: refresh rows and people: %w", err)
	}
	rb.refreshed = true
	return nil
}

// rebuildChunk is how many customers are rebuilt with one read of the row
// store and one _bulk: a large batch of markers is worked through in
// chunks, so memory stays bounded however far behind the indexer is.
const rebuildChunk = 500

// fenceRounds bounds how many times one chunk rebuilds the customers
// whose fenced writes lost to another writer; past it they are marked
// dirty again, for the next batch (whoever owns them then) to rebuild.
const fenceRounds = 3

// writeDocuments rebuilds and writes the documents of a chunk of
// customers. A write that finds its document changed since it was read
// (store.Stale) means another process wrote it meanwhile: those customers
// are rebuilt again from fresh reads, a few rounds at most.
func (ix *Indexer) writeDocuments(ctx context.Context, rb *rebuild, cids []string) ([]rejected, error) {
	var rejects []rejected
	for round := 1; len(cids) > 0; round++ {
		if round > 1 {
			// The other writer may have read rows this one cannot see yet.
			rb.mu.Lock()
			rb.refreshed = false
			rb.mu.Unlock()
		}
		stale, r, err := ix.writeRound(ctx, rb, cids, round)
		if err != nil {
			return nil, err
		}
		rejects = append(rejects, r...)
		if len(stale) == 0 {
			break
		}
		ix.m.fenced.Add(float64(len(stale)))
		ix.log.Warn("document writes fenced off: another process wrote them since they were read; rebuilding from fresh reads",
			"customers", len(stale), "customer_ids", stale[:min(len(stale), 10)], "round", round)
		if round == fenceRounds {
			again := make(map[string]bool, len(stale))
			for _, cid := range stale {
				again[cid] = true
			}
			return rejects, ix.markDirty(fullSet(again))
		}
		cids = stale
	}
	return rejects, nil
}

// writeRound rebuilds the customers' documents and writes them in one
// _bulk, fenced; it returns the ids whose writes lost to another writer.
//
// The fence: one process owns a customer at a time, the one holding its
// dirty partition, but a process can lose the partition without knowing
// (paused past its session timeout by a GC, a stalled VM, SIGSTOP) and
// still write when it wakes. So every write is conditional on the
// document standing where it stood before any of its inputs (persons,
// rows) were read: the sequence number read first (with the document's
// manifest), or its absence. A stale writer read seq s0, then the rows,
// then paused. If anyone wrote the document since, its write conflicts
// and it rebuilds from the current rows; if no one did, what it read is
// still current (a change made since is marked dirty, and its rebuild
// comes after this write and conflicts with it if need be). Deletes are
// fenced the same way; a document already missing is not deleted, and
// nothing records its absence, so a stale writer can still recreate a
// document deleted while it was paused (README, "Fenced writes").
func (ix *Indexer) writeRound(ctx context.Context, rb *rebuild, cids []string, round int) (stale []string, rejects []rejected, err error) {
	t := time.Now()
	built, at, err := ix.storedManifests(ctx, cids)
	if err != nil {
		return nil, nil, err
	}
	t = ix.m.since("versions", t)
	// A merged-away customer is not rebuilt: what is still under its id
	// moves to its survivor, which is marked for rebuild; a profile split
	// off takes what came with its identities from the one it was split
	// from, which is marked too (see merge.go, split.go).
	cids, people, again, err := ix.moveOwned(ctx, cids)
	if err != nil {
		return nil, nil, err
	}
	if err := ix.markDirty(fullSet(again)); err != nil {
		return nil, nil, err
	}
	if len(again) > 0 {
		// Rows moved to customers of this chunk (or of later ones): make
		// them visible to the reads below and to the later chunks.
		if err := ix.st.Refresh(ctx, ix.rows.index); err != nil {
			return nil, nil, fmt.Errorf("documents: refresh rows: %w", err)
		}
	}
	t = ix.m.since("people", t)
	// By id where the document's manifest and the markers tell every row
	// to read (manifest.go), else by a search of the row store.
	var byID, search []string
	for _, cid := range cids {
		if round == 1 && rb.changed[cid] != nil && built[cid] != nil {
			byID = append(byID, cid)
		} else {
			search = append(search, cid)
		}
	}
	srcs, read, fallback, err := ix.rows.deltaSources(ctx, byID, built, rb.changed)
	if err != nil {
		return nil, nil, err
	}
	search = append(search, fallback...)
	ix.m.rebuilds.WithLabelValues("by_id").Add(float64(len(byID) - len(fallback)))
	ix.m.rebuilds.WithLabelValues("search").Add(float64(len(search)))
	t = ix.m.since("sources_by_id", t)
	if len(search) > 0 {
		if err := ix.refresh(ctx, rb); err != nil {
			return nil, nil, err
		}
		s, r, err := ix.rows.sources(ctx, search)
		if err != nil {
			return nil, nil, err
		}
		maps.Copy(srcs, s)
		maps.Copy(read, r)
		t = ix.m.since("sources", t)
	}
	// The merged-away documents still there are deleted in the same _bulk
	// as their survivors' writes; those of profiles read by id are known
	// from their persons, the others also searched for (the people index
	// was refreshed with the rows).
	gone, goneAt, err := ix.mergedDocs(ctx, search, people)
	if err != nil {
		return nil, nil, err
	}
	t = ix.m.since("merged", t)
	// Read after the manifests' versions, like every input of the fenced
	// writes: manual tags and matched rules (membership.go).
	tags, err := ix.tagsOf(ctx, rb, cids, people, gone)
	if err != nil {
		return nil, nil, err
	}
	ops := make([]store.Op, 0, len(cids)+len(gone))
	var docs []map[string]any
	deleted := map[string]int64{} // customer → when its CRM row was deleted
	defer func() {
		rb.mu.Lock()
		maps.Copy(rb.purge, deleted)
		rb.mu.Unlock()
	}()
	for _, cid := range cids {
		src := srcs[cid]
		src.Rules = ix.cfg.Identity
		if p := people[cid]; p != nil {
			src.Identities = personIdentities(p)
		}
		seq, found := at[cid]
		doc, ok := customer.Build(cid, *src)
		switch {
		case ok:
			if t := tags[cid]; t != nil {
				doc["tags"] = t // before the hash: a change of tags alone is a change
			}
			m := manifestOf(read[cid])
			if m.Hash, err = docHash(doc); err != nil {
				return nil, nil, fmt.Errorf("documents: %s: %w", cid, err)
			}
			if found && sameBuild(built[cid], m) {
				ix.m.rebuilds.WithLabelValues("unchanged").Inc()
				continue
			}
			doc[schema.JoinField] = schema.CustomerRelation // the parent of its events (mapping.Customers)
			doc[schema.RebuildField] = m
			docs = append(docs, doc)
			op := store.Op{Action: store.Index, Index: ix.customers, ID: cid, Body: doc, IfAbsent: !found}
			if found {
				op.IfMatch = &seq
			}
			ops = append(ops, op)
		case found:
			ops = append(ops, store.Op{Action: store.Delete, Index: ix.customers, ID: cid, IfMatch: &seq})
		}
		// Its events go when its document does, and when an event came
		// for it since (stamped before the delete, it did not bring the
		// customer back); a change of its rows alone stores no event.
		if !ok && src.Customer != nil && src.Customer.Deleted && (found || rb.eventFor(cid)) {
			deleted[cid] = src.Customer.TS
		}
	}
	for _, id := range gone {
		seq := goneAt[id]
		ops = append(ops, store.Op{Action: store.Delete, Index: ix.customers, ID: id, IfMatch: &seq})
	}
	t = ix.m.since("build", t)
	if err := ix.attrs.prepare(ctx, docs); err != nil {
		return nil, nil, err
	}
	t = ix.m.since("prepare", t)
	ix.stopHook.beforeWrite(ops, ix.log)
	verdicts, err := ix.bulkDemoting(ctx, "materialize", ops, ix.attrs)
	if err != nil {
		return nil, nil, err
	}
	ix.m.since("write", t)
	lost, err := ix.judge("document", ops, verdicts, func(i int, reason string) {
		for _, m := range rb.markers[ops[i].ID] {
			rejects = append(rejects, rejected{markerOf(m, ops[i].ID), "document of " + ops[i].ID + " refused by OpenSearch: " + reason})
		}
	})
	if err != nil {
		return nil, nil, err
	}
	// A merged-away document written since it was read goes round again
	// too: its own rebuild marks its survivor, whose rebuild deletes it.
	for _, i := range lost {
		stale = append(stale, ops[i].ID)
		delete(deleted, ops[i].ID)
	}
	rb.mu.Lock()
	for i, op := range ops {
		if !slices.Contains(lost, i) {
			rb.written[op.ID] = true
		}
	}
	rb.mu.Unlock()
	return stale, rejects, nil
}

// purgeChunk is how many customers one purge of events names.
const purgeChunk = 200

// purgeEvents deletes the events of deleted customers: those up to the
// delete. A later event brings the customer back (customer.Build), with
// the events from then on; an event that arrives late, stamped before the
// delete, is purged by the rebuild its marker asks for. By event time, so
// that a process that lost the customer and purges late cannot take the
// events of a customer brought back since.
func (ix *Indexer) purgeEvents(ctx context.Context, deleted map[string]int64) error {
	if len(deleted) == 0 {
		return nil
	}
	// The events stored before this rebuild must be searchable to be found.
	if err := ix.st.Refresh(ctx, ix.customers); err != nil {
		return fmt.Errorf("documents: refresh before purging events: %w", err)
	}
	cids := slices.Sorted(maps.Keys(deleted))
	// At most purgeChunk customers a query: two clauses each, under the
	// 1,024 a query may hold.
	for chunk := range slices.Chunk(cids, purgeChunk) {
		should := make([]any, 0, len(chunk))
		for _, cid := range chunk {
			should = append(should, map[string]any{"bool": map[string]any{"filter": []any{
				map[string]any{"term": map[string]any{"customer_id": cid}},
				map[string]any{"range": map[string]any{schema.EventTimeField: map[string]any{"lte": deleted[cid], "format": "epoch_millis"}}},
			}}})
		}
		n, err := ix.st.DeleteByQuery(ctx, ix.events, map[string]any{"bool": map[string]any{"should": should, "minimum_should_match": 1}})
		if err != nil {
			return fmt.Errorf("documents: purge the events of deleted customers: %w", err)
		}
		ix.m.applied.WithLabelValues("event_purge").Add(float64(n))
	}
	return nil
}

// personIdentities are the identities OneID says the customer holds.
func personIdentities(p *identity.Person) []identity.Identity {
	out := make([]identity.Identity, 0, len(p.Identities))
	for _, k := range p.Identities {
		if id, ok := identity.ParseKey(k); ok {
			out = append(out, id)
		}
	}
	return out
}
