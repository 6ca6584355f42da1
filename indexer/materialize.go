package indexer

import (
	"context"

	"github.com/IBM/sarama"

	"cdp/customer"
	"cdp/store"
)

// materialize is stage 2: it rebuilds the document of every customer
// marked dirty in the batch, one write per customer however many markers
// the batch holds.
func (ix *Indexer) materialize(ctx context.Context, msgs []*sarama.ConsumerMessage) error {
	byCID := map[string][]*sarama.ConsumerMessage{}
	var cids []string
	for _, m := range msgs {
		cid := string(m.Key)
		if _, ok := byCID[cid]; !ok {
			cids = append(cids, cid)
		}
		byCID[cid] = append(byCID[cid], m)
	}
	var rejects []rejected
	err := ix.step(ctx, "materialize", func() error {
		var err error
		rejects, err = ix.writeDocuments(ctx, cids, byCID)
		return err
	})
	if err != nil {
		return err
	}
	return ix.deadLetter(ctx, rejects)
}

func (ix *Indexer) writeDocuments(ctx context.Context, cids []string, markers map[string][]*sarama.ConsumerMessage) ([]rejected, error) {
	srcs, err := ix.rows.sources(ctx, cids)
	if err != nil {
		return nil, err
	}
	ops := make([]store.Op, 0, len(cids))
	var docs []map[string]any
	for _, cid := range cids {
		doc, ok := customer.Build(cid, *srcs[cid])
		if ok {
			doc["relation"] = "customer" // the parent of its events (mapping.Customers)
			docs = append(docs, doc)
			ops = append(ops, store.Op{Action: store.Index, Index: ix.customers, ID: cid, Body: doc})
		} else {
			ops = append(ops, store.Op{Action: store.Delete, Index: ix.customers, ID: cid})
		}
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
