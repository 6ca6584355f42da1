package indexer

import (
	"context"
	"strconv"

	"github.com/IBM/sarama"

	"cdp/customer"
	"cdp/identity"
	"cdp/store"
)

type parsedChange struct {
	msg *sarama.ConsumerMessage
	ch  *change
}

// rowChanges are the changes of one row in a batch, in arrival order.
type rowChanges struct {
	rid   string
	msgs  []*sarama.ConsumerMessage
	final *change
}

// applyChanges writes CDC changes to the row store. Per row, only the
// newest change of the batch is written, and only if the store holds
// nothing newer (by source position). Every customer that held or now
// holds a changed row is marked dirty, including the owner a row was moved
// away from, even when the write turns out to be a replay: that is what
// makes a crash between the write and the marking harmless.
func (ix *Indexer) applyChanges(ctx context.Context, changes []parsedChange, dirty dirtySet) ([]rejected, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	order, reqs := groupByRow(ix.cfg.Identity, changes)
	cidOf, err := ix.resolveCRM(ctx, reqs, dirty)
	if err != nil {
		return nil, err
	}
	stored, err := ix.readStored(ctx, order)
	if err != nil {
		return nil, err
	}

	// The new rows, and the customers they touch.
	rows := map[string]*customer.Row{}
	for _, rc := range order {
		if row := newRow(rc.final, stored[rc.rid], cidOf); row != nil {
			rows[rc.rid] = row
		}
	}
	owner := func(r *customer.Row, movedFrom bool) string { return ix.owner(r, movedFrom, rows, stored) }
	ops := make([]orderedOp, 0, len(rows))
	for _, rc := range order {
		old, row := stored[rc.rid], rows[rc.rid]
		cur := owner(row, false)
		for _, cid := range []string{owner(old, false), owner(old, true), cur, owner(row, true)} {
			if cid != "" {
				dirty.row(cid, rc.rid)
			}
		}
		if row != nil {
			ops = append(ops, orderedOp{rc: rc, op: ix.rows.writeOp(row)})
			if p, ok := ix.rows.parkOp(row, cur); ok {
				// No one to mark for it yet: its order's rebuild finds it
				// through the order's parking record.
				ops = append(ops, orderedOp{rc: rc, op: p})
			}
		}
	}

	rejects, err := ix.writeRows(ctx, ops)
	if err != nil {
		return nil, err
	}
	if err := ix.unpark(ctx, rows, stored, dirty); err != nil {
		return nil, err
	}
	return rejects, nil
}

// unpark marks the customers whose orders hold the items written, as
// the orders stand once the items are durably written. Another lane may
// write an item's order (and rebuild its customer) between this lane's
// read of the order and its write of the item: that rebuild cannot see
// the item, and this lane marked the order's owner as it read it (nobody,
// for an order not there yet; the customer it was moved away from, for a
// move). So the orders are read again (realtime): an order there now was
// written before this read, and its customer is rebuilt after it, with
// the item; an order written after this read is written after the item,
// and the rebuild its writer causes sees it (or, new to its customer,
// finds it parked). Orders this lane wrote itself are current already.
func (ix *Indexer) unpark(ctx context.Context, rows, stored map[string]*customer.Row, dirty dirtySet) error {
	var orders []string
	items := map[string][]string{} // order row id → its items written here
	for _, r := range rows {
		if r.Kind != customer.KindItem || r.OrderID == "" {
			continue
		}
		if rid := rowID(customer.KindOrder, r.OrderID); rows[rid] == nil {
			if items[rid] == nil {
				orders = append(orders, rid)
			}
			items[rid] = append(items[rid], r.RID)
		}
	}
	if len(orders) == 0 {
		return nil
	}
	now := map[string]*customer.Row{}
	if err := ix.rows.get(ctx, orders, now); err != nil {
		return err
	}
	for rid, o := range now {
		if o == nil || o.CustomerID == "" {
			continue
		}
		if was := stored[rid]; was != nil && was.CustomerID == o.CustomerID && was.Pos == o.Pos {
			continue // as read before the write: its owner is marked
		}
		for _, item := range items[rid] {
			dirty.row(o.CustomerID, item)
		}
	}
	return nil
}

// crmRequest is what one change says about a CRM id: the identities it
// links to it (a customers row's phone and email).
type crmRequest struct {
	crmID string
	ids   []identity.Identity
	at    int64
	src   identity.Source
	msg   string // identity.Request.Message: the change's row and position
}

// groupByRow groups a batch's changes by row, in the order rows first
// appear, keeping each row's newest change; it also returns the CRM ids
// the changes name (of customers, with the identities each customers
// change links, and of the customers orders point to).
func groupByRow(rules *identity.Rules, changes []parsedChange) (order []*rowChanges, reqs []crmRequest) {
	byRID := map[string]*rowChanges{}
	for _, pc := range changes {
		rid := rowID(pc.ch.Kind, pc.ch.Key)
		rc := byRID[rid]
		if rc == nil {
			rc = &rowChanges{rid: rid}
			byRID[rid] = rc
			order = append(order, rc)
		}
		rc.msgs = append(rc.msgs, pc.msg)
		if rc.final == nil || pc.ch.Pos >= rc.final.Pos {
			rc.final = pc.ch
		}
		switch pc.ch.Kind {
		case customer.KindCustomer:
			// A delete links nothing: its before image is no news.
			var data map[string]any
			if !pc.ch.Deleted() {
				data = pc.ch.Data
			}
			reqs = append(reqs, crmRequest{pc.ch.Key, customerIdentities(rules, pc.ch.Key, data), pc.ch.TS, sourceOf(pc.msg), changeMessage(rid, pc.ch.Pos)})
		case customer.KindOrder:
			if pc.ch.Parent != "" {
				reqs = append(reqs, crmRequest{pc.ch.Parent, customerIdentities(rules, pc.ch.Parent, nil), pc.ch.TS, sourceOf(pc.msg), changeMessage(rid, pc.ch.Pos)})
			}
		}
	}
	return order, reqs
}

// changeMessage names a CDC change by its row and source position, as
// identity.Request.Message: a change sent again is the same message.
func changeMessage(rid string, pos int64) string { return rid + "@" + strconv.FormatInt(pos, 10) }

// readStored reads what the store holds: the rows themselves, the orders
// items point to, and the orders items were moved away from.
func (ix *Indexer) readStored(ctx context.Context, order []*rowChanges) (map[string]*customer.Row, error) {
	stored := map[string]*customer.Row{}
	rids := make([]string, 0, len(order))
	for _, rc := range order {
		rids = append(rids, rc.rid)
		if rc.final.Kind == customer.KindItem && rc.final.Parent != "" {
			rids = append(rids, rowID(customer.KindOrder, rc.final.Parent))
		}
	}
	if err := ix.rows.get(ctx, rids, stored); err != nil {
		return nil, err
	}
	var previousOrders []string
	for _, rc := range order {
		if old := stored[rc.rid]; old != nil && old.Kind == customer.KindItem {
			previousOrders = append(previousOrders, rowID(customer.KindOrder, old.OrderID), rowID(customer.KindOrder, old.MovedFrom))
		}
	}
	if err := ix.rows.get(ctx, previousOrders, stored); err != nil {
		return nil, err
	}
	return stored, nil
}

// owner is the customer a row belongs to (with movedFrom, the one it was
// moved away from): its own customer id, or for an item its order's, as
// the batch's new rows or else the store have it. An item whose order has
// not arrived yet belongs to no one so far ("").
func (ix *Indexer) owner(r *customer.Row, movedFrom bool, rows, stored map[string]*customer.Row) string {
	if r == nil {
		return ""
	}
	if r.Kind != customer.KindItem {
		if movedFrom {
			return r.MovedFrom
		}
		return r.CustomerID
	}
	key := r.OrderID
	if movedFrom {
		key = r.MovedFrom
	}
	if key == "" {
		return ""
	}
	rid := rowID(customer.KindOrder, key)
	if o := rows[rid]; o != nil {
		return o.CustomerID
	}
	if o := stored[rid]; o != nil {
		return o.CustomerID
	}
	ix.m.parked.Inc() // an item whose order has not arrived yet
	return ""
}

// writeRows writes the new rows in one _bulk and returns, for every row
// OpenSearch refuses, each of its messages as rejected.
func (ix *Indexer) writeRows(ctx context.Context, ops []orderedOp) ([]rejected, error) {
	verdicts, err := ix.bulk(ctx, "apply_changes", opsOf(ops))
	if err != nil {
		return nil, err
	}
	var rejects []rejected
	if _, err := ix.judge("row", opsOf(ops), verdicts, func(i int, reason string) {
		for _, m := range ops[i].rc.msgs {
			rejects = append(rejects, rejected{m, "row refused by OpenSearch: " + reason})
		}
	}); err != nil {
		return nil, err
	}
	return rejects, nil
}

type orderedOp struct {
	rc *rowChanges
	op store.Op
}

// newRow returns the row to store for the newest change, or nil when the
// store already holds a newer one.
func newRow(c *change, old *customer.Row, cidOf map[string]string) *customer.Row {
	if old != nil && old.Pos > c.Pos {
		return nil
	}
	row := &customer.Row{RID: rowID(c.Kind, c.Key), Kind: c.Kind, Key: c.Key, Pos: c.Pos, TS: c.TS, Deleted: c.Deleted(), Data: c.Data}
	switch c.Kind {
	case customer.KindCustomer:
		row.CustomerID = cidOf[c.Key]
	case customer.KindOrder:
		row.CustomerID = cidOf[c.Parent]
	case customer.KindItem:
		row.OrderID = c.Parent
	}
	prev := func(r *customer.Row) string {
		if r.Kind == customer.KindItem {
			return r.OrderID
		}
		return r.CustomerID
	}
	if old != nil {
		if c.Deleted() && c.Parent == "" { // a delete whose before image lacks the parent
			row.CustomerID, row.OrderID = old.CustomerID, old.OrderID
		}
		row.MovedFrom = old.MovedFrom
		if p := prev(old); p != "" && p != prev(row) {
			row.MovedFrom = p
		}
	}
	return row
}

// resolveCRM returns the customer id of each CRM id, claiming new ones
// and linking the identities its rows bring. A CRM id that identifies
// nobody (blocked) gets none: its rows belong to no one.
func (ix *Indexer) resolveCRM(ctx context.Context, reqs []crmRequest, dirty dirtySet) (map[string]string, error) {
	ids := make([]identity.Request, len(reqs))
	for i, r := range reqs {
		ids[i] = identity.Request{IDs: r.ids, At: r.at, Source: r.src, Message: r.msg}
	}
	res, err := ix.resolver.Resolve(ctx, ids)
	if err != nil {
		return nil, err
	}
	cids := res.Customers
	for _, cid := range res.MergedAway {
		dirty.all(cid) // its rebuild moves what it owns to its survivor
	}
	out := make(map[string]string, len(reqs))
	for i, r := range reqs {
		out[r.crmID] = cids[i]
	}
	return out, nil
}

func opsOf(ops []orderedOp) []store.Op {
	out := make([]store.Op, len(ops))
	for i, o := range ops {
		out[i] = o.op
	}
	return out
}
