package indexer

import (
	"context"

	"github.com/IBM/sarama"

	"cdp/customer"
	"cdp/identity"
	"cdp/schema"
	"cdp/store"
)

// materialize is stage 2: it rebuilds the document of every customer
// marked dirty in the batch, one write per customer however many markers
// the batch holds. While the indexer is behind, the rebuilds lane takes
// large batches, so a customer changed many times is rebuilt once.
func (ix *Indexer) materialize(ctx context.Context, msgs []*sarama.ConsumerMessage) error {
	byCID := map[string][]*sarama.ConsumerMessage{}
	var cids []string
	var rejects []rejected
	for _, m := range msgs {
		marked, err := markedCustomers(m)
		if err != nil {
			rejects = append(rejects, rejected{m, err.Error()})
			continue
		}
		for _, cid := range marked {
			if _, ok := byCID[cid]; !ok {
				cids = append(cids, cid)
			}
			byCID[cid] = append(byCID[cid], m)
		}
	}
	for start := 0; start < len(cids); start += rebuildChunk {
		chunk := cids[start:min(start+rebuildChunk, len(cids))]
		err := ix.step(ctx, "materialize", func() error {
			r, err := ix.writeDocuments(ctx, chunk, byCID)
			if err == nil {
				rejects = append(rejects, r...)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return ix.deadLetter(ctx, rejects)
}

// rebuildChunk is how many customers are rebuilt with one read of the row
// store and one _bulk: a large batch of markers is worked through in
// chunks, so memory stays bounded however far behind the indexer is.
const rebuildChunk = 500

func (ix *Indexer) writeDocuments(ctx context.Context, cids []string, markers map[string][]*sarama.ConsumerMessage) ([]rejected, error) {
	// A merged-away customer is not rebuilt: what is still under its id
	// moves to its survivor, which is marked for rebuild; a profile split
	// off takes what came with its identities from the one it was split
	// from, which is marked too (see merge.go, split.go).
	cids, people, again, err := ix.moveOwned(ctx, cids)
	if err != nil {
		return nil, err
	}
	if err := ix.markDirty(again); err != nil {
		return nil, err
	}
	gone, err := ix.mergedDocs(ctx, cids, people)
	if err != nil {
		return nil, err
	}
	srcs, err := ix.rows.sources(ctx, cids)
	if err != nil {
		return nil, err
	}
	ops := make([]store.Op, 0, len(cids)+len(gone))
	var docs []map[string]any
	for _, cid := range cids {
		src := srcs[cid]
		src.Rules = ix.cfg.Identity
		if p := people[cid]; p != nil {
			src.Identities = personIdentities(p)
		}
		doc, ok := customer.Build(cid, *src)
		if ok {
			doc[schema.JoinField] = schema.CustomerRelation // the parent of its events (mapping.Customers)
			docs = append(docs, doc)
			ops = append(ops, store.Op{Action: store.Index, Index: ix.customers, ID: cid, Body: doc})
		} else {
			ops = append(ops, store.Op{Action: store.Delete, Index: ix.customers, ID: cid})
		}
	}
	// The merged-away documents go in the same _bulk as their
	// survivors': a reader sees the profiles before the merge or after.
	for _, id := range gone {
		ops = append(ops, store.Op{Action: store.Delete, Index: ix.customers, ID: id})
	}
	if err := ix.attrs.prepare(ctx, docs); err != nil {
		return nil, err
	}
	verdicts, err := ix.bulkDemoting(ctx, "materialize", ops, ix.attrs)
	if err != nil {
		return nil, err
	}
	var rejects []rejected
	err = ix.judge("document", ops, verdicts, func(i int, reason string) {
		for _, m := range markers[ops[i].ID] {
			rejects = append(rejects, rejected{m, "document of " + ops[i].ID + " refused by OpenSearch: " + reason})
		}
	})
	return rejects, err
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
