// Package exportjob runs asynchronous audience exports (CONTRACT §4.3,
// POST /v1/exports): a job's plan, status, progress and checkpoint live
// in OpenSearch (mapping.ExportJobs), a Runner in every API process picks
// the jobs up, and one runs each job at a time across processes.
//
// # One runner at a time
//
// A runner takes a Redis lease on the job (coord.TryLease) and extends it
// every third of its ttl while it runs; it stops the moment an extension
// fails. The lease alone cannot keep a paused or partitioned process
// from writing after its lease expired, so every write of the job's
// document is fenced: the runner first writes the job with a new fencing
// token (coord.Fence, a Redis counter, recorded as "fence") conditional on
// the sequence number it read, and every checkpoint after that is
// conditional (if_seq_no, if_primary_term) on the sequence number of the
// runner's own last write. A process that lost the job, to another runner
// or to a cancel, fails its next checkpoint with a conflict and stops.
//
// # Resume
//
// A checkpoint is written after each page, once the page is durable in
// the destination: a file is fsynced and its length recorded; Kafka
// records are acknowledged by every in-sync replica and the next offset
// of each partition recorded. The checkpoint holds Last, the customer id
// of the page's last member, after which a resumed walk continues
// (export.Query.After: customer ids are the sort, unique). A runner
// writes a file of its own, "<id>.<fence>.part": a resuming runner copies
// the first checkpointed bytes of the part of the runner before into its
// own, so what the dead runner wrote after the checkpoint is dropped and
// written again once, and a runner that lost the job but still writes
// writes into a part nobody reads. The part of a done job is renamed to
// "<id>.<format>" (FilePath). For Kafka see KafkaSink.
//
// A resumed walk opens a new point in time: the members written before
// the checkpoint are as of the first one, those after as of the new one.
package exportjob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"cdp/export"
	"cdp/store"
)

// Status is where a job stands.
type Status string

// The statuses of a job.
const (
	Queued    Status = "queued"
	Running   Status = "running"
	Done      Status = "done"
	Failed    Status = "failed"
	Cancelled Status = "cancelled"
)

// Terminal reports whether a job in this status will not run again.
func (s Status) Terminal() bool { return s == Done || s == Failed || s == Cancelled }

// The destination types.
const (
	File  = "file"
	Kafka = "kafka"
)

// Destination is where a job writes.
type Destination struct {
	Type  string `json:"type"`
	Topic string `json:"topic,omitempty"`
}

// Plan is what an export reads and how it writes it, fixed when the job
// is created: the compiled query (a segment's filter as it was then), the
// _source of each hit, the format and, for CSV, the columns.
type Plan struct {
	Query   json.RawMessage `json:"query"`
	Source  json.RawMessage `json:"source,omitempty"`
	Format  export.Format   `json:"format"`
	Columns []string        `json:"columns,omitempty"`
	BOM     bool            `json:"bom,omitempty"`
	// Mask lists the fields the job's creator sees masked (name, phone,
	// email): the runner masks them in every document it writes.
	Mask []string `json:"mask,omitempty"`
}

// NewWriter returns the export.Writer of the plan's format over w. When
// resumed is set the CSV header (and byte-order mark) are not written
// again: they are already at the start of the file.
func (p *Plan) NewWriter(w interface{ Write([]byte) (int, error) }, resumed bool) (export.Writer, error) {
	if p.Format != export.CSV {
		return export.NewNDJSON(w), nil
	}
	if !resumed {
		return export.NewCSV(w, p.Columns, p.BOM)
	}
	// The CSV writer writes its header first, always: measure it and let
	// that many bytes fall.
	var head countWriter
	hw, err := export.NewCSV(&head, p.Columns, p.BOM)
	if err != nil {
		return nil, err
	}
	if err := hw.Flush(); err != nil {
		return nil, err
	}
	return export.NewCSV(&skipWriter{w: w, skip: head.n}, p.Columns, p.BOM)
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// skipWriter drops the first skip bytes written through it.
type skipWriter struct {
	w    interface{ Write([]byte) (int, error) }
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip > 0 {
		k := min(int64(len(p)), s.skip)
		s.skip -= k
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// Job is an export job as stored.
type Job struct {
	ID          string          `json:"id"`
	Status      Status          `json:"status"`
	Segment     string          `json:"segment,omitempty"`
	Filter      json.RawMessage `json:"filter,omitempty"`
	Fields      []string        `json:"fields,omitempty"`
	Destination Destination     `json:"destination"`
	Plan        Plan            `json:"plan"`
	Exported    int64           `json:"exported"`
	Total       int64           `json:"total"`
	CreatedAt   string          `json:"created_at"`
	// CreatedBy is the actor who asked for the job (CONTRACT §7's
	// actor): only they, and roles that see everyone's work, see it.
	CreatedBy  string `json:"created_by,omitempty"`
	StartedAt  string `json:"started_at,omitempty"`
	FinishedAt string `json:"finished_at,omitempty"`
	Error      string `json:"error,omitempty"`

	// The checkpoint: the last customer id written, and where the
	// destination stood then (a file's length, or the next offset of
	// each partition of the topic, by partition number).
	Last  string `json:"last,omitempty"`
	Bytes int64  `json:"bytes"`
	// Part is the file (in the export directory) the runner writes
	// until the job is done; the checkpoint's Bytes are its length.
	Part    string           `json:"part,omitempty"`
	Offsets map[string]int64 `json:"offsets,omitempty"`
	// Fence is the fencing token of the runner that wrote the
	// checkpoint; Runner names its process.
	Fence  int64  `json:"fence"`
	Runner string `json:"runner,omitempty"`
}

// View is a job as the API answers it.
type View struct {
	ID          string          `json:"id"`
	Status      Status          `json:"status"`
	Exported    int64           `json:"exported"`
	Total       int64           `json:"total"`
	CreatedAt   string          `json:"created_at"`
	CreatedBy   string          `json:"created_by,omitempty"`
	FinishedAt  *string         `json:"finished_at"`
	Error       *string         `json:"error"`
	Segment     string          `json:"segment,omitempty"`
	Filter      json.RawMessage `json:"filter,omitempty"`
	Format      export.Format   `json:"format"`
	Fields      []string        `json:"fields,omitempty"`
	BOM         bool            `json:"bom"`
	Destination Destination     `json:"destination"`
}

// View returns the job as answered.
func (j *Job) View() View {
	v := View{ID: j.ID, Status: j.Status, Exported: j.Exported, Total: j.Total, CreatedAt: j.CreatedAt, CreatedBy: j.CreatedBy,
		Segment: j.Segment, Filter: j.Filter, Format: j.Plan.Format, Fields: j.Fields, BOM: j.Plan.BOM, Destination: j.Destination}
	if j.FinishedAt != "" {
		v.FinishedAt = &j.FinishedAt
	}
	if j.Error != "" {
		v.Error = &j.Error
	}
	return v
}

// FilePath is where the file of a job with a file destination is written.
func FilePath(dir string, j *Job) string {
	return filepath.Join(dir, j.ID+"."+string(j.Plan.Format))
}

// NewID mints a job id.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "exp_" + hex.EncodeToString(b[:])
}

// Now is the time stamp format of jobs.
func Now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// Version is where a job's document stood when read or written: the
// fencing condition of the next write.
type Version struct {
	SeqNo       int64 `json:"_seq_no"`
	PrimaryTerm int64 `json:"_primary_term"`
}

// ErrFenced is a conditional write refused: somebody wrote the job since
// (another runner, or a cancel).
var ErrFenced = errors.New("exportjob: the job was written by somebody else since")

// Store reads and writes the jobs in their index.
type Store struct {
	st    *store.Client
	index string
}

// NewStore returns the jobs of the index (mapping.ExportJobs' alias).
func NewStore(st *store.Client, index string) *Store { return &Store{st: st, index: index} }

func (s *Store) docPath(id string) string { return "/" + s.index + "/_doc/" + url.PathEscape(id) }

// Create stores a new job; searches see it once answered.
func (s *Store) Create(ctx context.Context, j *Job) error {
	return s.st.Do(ctx, http.MethodPut, "/"+s.index+"/_create/"+url.PathEscape(j.ID)+"?refresh=wait_for", j, nil)
}

// Get reads a job, realtime, with its version.
func (s *Store) Get(ctx context.Context, id string) (*Job, Version, bool, error) {
	var resp struct {
		Version
		Found  bool `json:"found"`
		Source *Job `json:"_source"`
	}
	if id == "" || len(id) > 128 {
		return nil, Version{}, false, nil
	}
	err := s.st.Do(ctx, http.MethodGet, s.docPath(id), nil, &resp)
	if store.StatusOf(err) == http.StatusNotFound {
		return nil, Version{}, false, nil
	}
	if err != nil {
		return nil, Version{}, false, err
	}
	if !resp.Found || resp.Source == nil {
		return nil, Version{}, false, nil
	}
	return resp.Source, resp.Version, true, nil
}

// Put writes the job if its document is still at version v, returning
// the new version; ErrFenced if it is not.
func (s *Store) Put(ctx context.Context, j *Job, v Version) (Version, error) {
	var resp Version
	path := s.docPath(j.ID) + "?if_seq_no=" + strconv.FormatInt(v.SeqNo, 10) + "&if_primary_term=" + strconv.FormatInt(v.PrimaryTerm, 10)
	err := s.st.Do(ctx, http.MethodPut, path, j, &resp)
	if store.StatusOf(err) == http.StatusConflict {
		return Version{}, ErrFenced
	}
	return resp, err
}

// List returns every job, newest first.
func (s *Store) List(ctx context.Context) ([]Job, error) {
	return s.search(ctx, map[string]any{"match_all": map[string]any{}}, "desc", 0)
}

// Pending returns up to n jobs that are queued or running, oldest first.
func (s *Store) Pending(ctx context.Context, n int) ([]Job, error) {
	return s.search(ctx, map[string]any{"terms": map[string]any{"status": []Status{Queued, Running}}}, "asc", n)
}

func (s *Store) search(ctx context.Context, q any, order string, n int) ([]Job, error) {
	body := map[string]any{"query": q, "sort": []any{map[string]any{"created_at": order}, map[string]any{"id": order}}}
	var out []Job
	if n > 0 {
		body["size"] = n
		r, err := s.st.Search(ctx, s.index, body)
		if err != nil {
			return nil, err
		}
		for _, h := range r.Hits {
			var j Job
			if err := h.Decode(&j); err != nil {
				return nil, err
			}
			out = append(out, j)
		}
		return out, nil
	}
	for h, err := range s.st.Hits(ctx, s.index, store.Scan{Body: body}) {
		if err != nil {
			return nil, err
		}
		var j Job
		if err := h.Decode(&j); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// Cancel marks a job cancelled unless it has ended; its runner stops at
// its next checkpoint, which the write fences off. It returns the job as
// it stands after.
func (s *Store) Cancel(ctx context.Context, id string) (*Job, bool, error) {
	j, v, found, err := s.Get(ctx, id)
	if err != nil || !found {
		return nil, found, err
	}
	j, err = s.CancelJob(ctx, j, v)
	return j, j != nil, err
}

// CancelJob cancels a job the caller has just read at version v, without
// reading it again unless the runner wrote it meanwhile; a job that is
// gone by then is answered as nil with no error.
func (s *Store) CancelJob(ctx context.Context, j *Job, v Version) (*Job, error) {
	id := j.ID
	for try := 0; ; try++ {
		if j.Status.Terminal() {
			return j, nil
		}
		j.Status, j.FinishedAt = Cancelled, Now()
		_, err := s.Put(ctx, j, v)
		if err == nil {
			return j, nil
		}
		if !errors.Is(err, ErrFenced) || try == 20 {
			return nil, fmt.Errorf("cancel %s: %w", id, err)
		}
		// The runner checkpointed meanwhile: read it again.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(try+1) * 10 * time.Millisecond):
		}
		var found bool
		if j, v, found, err = s.Get(ctx, id); err != nil || !found {
			return nil, err
		}
	}
}
