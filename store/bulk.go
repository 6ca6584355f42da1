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
	// Body is the document (Index, Create) or the update body (Update).
	Body any
}

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

// Blocked reports that the index refuses writes (read-only block).
func (v Verdict) Blocked() bool { return v.Type == "cluster_block_exception" }

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
	if err := enc.Encode(map[string]any{string(op.Action): meta}); err != nil {
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
