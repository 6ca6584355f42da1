package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Action is one bulk operation.
type Action string

// Bulk actions.
const (
	Index  Action = "index"
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Op is one item of a bulk request.
type Op struct {
	Action  Action
	Index   string
	ID      string
	Routing string
	// Version and VersionType ("external", "external_gte") make the write
	// conditional on the document's stored version.
	Version     int64
	VersionType string
	// RetryOnConflict is used with Update.
	RetryOnConflict int
	// IfMatch makes the write conditional on the document being as read:
	// its sequence number and primary term (optimistic concurrency). A
	// write that finds it changed is refused with a 409.
	IfMatch *SeqTerm
	// IfAbsent makes an Index conditional on there being no document, as
	// it was read: it is sent as a create, and a 409 means another writer
	// wrote the document since (Judge: Stale), where a plain Create's 409
	// means the same document was already there (Unchanged).
	IfAbsent bool
	// Body is the document (Index, Create) or the update body (Update).
	Body any
}

// SeqTerm is where a document stood when it was read: the sequence
// number and primary term of its last write.
type SeqTerm struct{ SeqNo, PrimaryTerm int64 }

// Verdict is OpenSearch's answer for one item.
type Verdict struct {
	Status int
	Type   string
	Reason string
}

// OK reports whether the item was applied.
func (v Verdict) OK() bool { return v.Status >= 200 && v.Status < 300 }

// Retryable reports whether sending the same item again later may succeed.
func (v Verdict) Retryable() bool {
	return v.Status == http.StatusTooManyRequests || v.Status >= 500 || v.Type == "cluster_block_exception"
}

// Conflict reports a version conflict (409).
func (v Verdict) Conflict() bool { return v.Status == http.StatusConflict }

// Err returns the verdict of a failed item as an *Error (so Unavailable
// applies to it), or nil for an applied one.
func (v Verdict) Err() error {
	if v.OK() {
		return nil
	}
	return &Error{Status: v.Status, Type: v.Type, Reason: v.Reason}
}

// Outcome is what a verdict means for the op it answers.
type Outcome int

// Outcomes of a bulk item.
const (
	// Applied: the op was written.
	Applied Outcome = iota
	// Unchanged: nothing was written and nothing needs to be: a create met a
	// document already there, a versioned write met an equal or newer
	// version, or a delete found no document.
	Unchanged
	// Retry: the same op may succeed if sent again later (the cluster was
	// overloaded, failing, or the index blocked).
	Retry
	// Refused: OpenSearch will never take the op as it is.
	Refused
	// Stale: a fenced write (IfMatch, IfAbsent) found the document changed
	// since it was read: another writer was there first. Sending the op
	// again cannot help; read the document's inputs again and rebuild it.
	Stale
)

// Judge tells what the verdict means for op.
func Judge(op Op, v Verdict) Outcome {
	switch {
	case v.OK():
		return Applied
	case v.Conflict() && (op.IfMatch != nil || op.IfAbsent):
		return Stale
	case v.Conflict() && (op.Action == Create || op.VersionType != ""):
		return Unchanged
	case op.Action == Delete && v.Status == http.StatusNotFound:
		return Unchanged
	case v.Retryable():
		return Retry
	default:
		return Refused
	}
}

// ItemError is a bulk item that failed.
type ItemError struct {
	Op      Op
	Verdict Verdict
	Outcome Outcome // Retry, Refused or Stale
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("%s %s/%s: %d %s: %s", e.Op.Action, e.Op.Index, e.Op.ID, e.Verdict.Status, e.Verdict.Type, e.Verdict.Reason)
}

// Unwrap returns the verdict as an *Error when the item was refused for
// good, so that StatusOf tells its 4xx. An item worth retrying unwraps to
// nothing: a read-only block answers 403, which must not pass for a
// request that can never succeed.
func (e *ItemError) Unwrap() error {
	if e.Outcome != Refused {
		return nil
	}
	return e.Verdict.Err()
}

// CreateIfAbsent sends the ops as creates: a document already stored
// under an op's id is left as it is, and that op's position is returned in
// existing. An item failing otherwise makes err, one *ItemError per item,
// joined; the items that did not fail were written all the same.
// StatusOf(err) is the 4xx of a refused item, 0 when every failed item is
// worth retrying.
func (c *Client) CreateIfAbsent(ctx context.Context, ops []Op) (existing []int, err error) {
	creates := make([]Op, len(ops))
	for i, op := range ops {
		op.Action = Create
		creates[i] = op
	}
	verdicts, err := c.Bulk(ctx, creates)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, v := range verdicts {
		switch o := Judge(creates[i], v); o {
		case Applied:
		case Unchanged:
			existing = append(existing, i)
		default:
			errs = append(errs, &ItemError{Op: creates[i], Verdict: v, Outcome: o})
		}
	}
	return existing, errors.Join(errs...)
}

// MaxBulkBytes bounds one _bulk request body; Bulk splits larger batches.
const MaxBulkBytes = 8 << 20

// Bulk sends the ops in _bulk requests of at most MaxBulkBytes and returns
// one verdict per op, in order. An error means a request as a whole failed
// and nothing can be assumed about any item.
func (c *Client) Bulk(ctx context.Context, ops []Op) ([]Verdict, error) {
	out := make([]Verdict, 0, len(ops))
	var buf bytes.Buffer
	first := 0
	for i, op := range ops {
		n := buf.Len()
		if err := encodeOp(&buf, op); err != nil {
			return nil, err
		}
		if buf.Len() > MaxBulkBytes && i > first {
			// Send what came before this op; it starts the next request.
			rest := append([]byte(nil), buf.Bytes()[n:]...)
			v, err := c.sendBulk(ctx, buf.Bytes()[:n], i-first)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
			buf.Reset()
			buf.Write(rest)
			first = i
		}
	}
	if len(ops) > first {
		v, err := c.sendBulk(ctx, buf.Bytes(), len(ops)-first)
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return out, nil
}

// encodeOp appends the op's action line and, but for deletes, its source.
func encodeOp(buf *bytes.Buffer, op Op) error {
	enc := json.NewEncoder(buf)
	meta := map[string]any{"_index": op.Index, "_id": op.ID}
	if op.Routing != "" {
		meta["routing"] = op.Routing
	}
	if op.VersionType != "" {
		meta["version"] = op.Version
		meta["version_type"] = op.VersionType
	}
	if op.RetryOnConflict > 0 {
		meta["retry_on_conflict"] = op.RetryOnConflict
	}
	if op.IfMatch != nil {
		meta["if_seq_no"] = op.IfMatch.SeqNo
		meta["if_primary_term"] = op.IfMatch.PrimaryTerm
	}
	action := op.Action
	if op.IfAbsent {
		action = Create
	}
	if err := enc.Encode(map[string]any{string(action): meta}); err != nil {
		return err
	}
	if op.Action != Delete {
		if err := enc.Encode(op.Body); err != nil {
			return fmt.Errorf("store: encode %s/%s: %w", op.Index, op.ID, err)
		}
	}
	return nil
}

// sendBulk sends one _bulk body of n items.
func (c *Client) sendBulk(ctx context.Context, body []byte, n int) ([]Verdict, error) {
	var resp struct {
		Items []map[string]struct {
			Status int `json:"status"`
			Error  *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := c.Do(ctx, http.MethodPost, "/_bulk", body, &resp); err != nil {
		return nil, err
	}
	if len(resp.Items) != n {
		return nil, fmt.Errorf("store: bulk answered %d items for %d ops", len(resp.Items), n)
	}
	out := make([]Verdict, n)
	for i, item := range resp.Items {
		for _, r := range item {
			out[i].Status = r.Status
			if r.Error != nil {
				out[i].Type, out[i].Reason = r.Error.Type, r.Error.Reason
			}
		}
	}
	return out, nil
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
