package api

import (
	"bytes"
	"cdp/access"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"cdp/catalog"
	"cdp/config"
	"cdp/export"
	"cdp/exportjob"
	"cdp/mapping"
	"cdp/query"
	"cdp/schema"
	"cdp/store"
)

// Export jobs (CONTRACT §4.3): POST /v1/exports stores a job with its
// plan (the query compiled now, the format, the columns); the runners of
// package exportjob, one in every `cdp serve`, run it; the handlers here
// read its document, realtime, and stream its file once it is done.

// ExportRequest is what an export is of and how it is written: a saved
// segment or a filter, the format, the fields (none: every field, or for
// CSV the catalog's default columns) and, for CSV, the byte-order mark.
type ExportRequest struct {
	Segment string
	Filter  json.RawMessage
	Format  string
	Fields  []string
	BOM     bool
}

// ErrSegmentNotFound is an export of a segment that does not exist.
var ErrSegmentNotFound = errors.New("no such segment")

// Planner turns export requests into plans, as the API does: `cdp
// export` plans with it, so that a filter file means there what it means
// in a request.
type Planner struct{ s *Server }

// NewPlanner returns a planner reading the catalog and the saved
// segments of cfg's deployment.
func NewPlanner(cfg *config.Config, st *store.Client) *Planner {
	return &Planner{s: &Server{cfg: cfg, st: st, fields: catalog.New(st, mapping.Fields.Alias(cfg.IndexPrefix)),
		customers: mapping.Customers.Alias(cfg.IndexPrefix), segmentIndex: mapping.Segments.Alias(cfg.IndexPrefix)}}
}

// Customers is the alias the plans are run on.
func (p *Planner) Customers() string { return p.s.customers }

// Plan compiles req. Bad input is an error naming what is wrong (and
// where, as "path: message"); a missing segment wraps ErrSegmentNotFound.
func (p *Planner) Plan(ctx context.Context, req ExportRequest) (*exportjob.Plan, error) {
	plan, err := p.s.exportPlan(ctx, req)
	var br *badRequest
	var qe *query.Error
	switch {
	case errors.As(err, &br) && br.path != "" && !strings.HasPrefix(br.message, br.path):
		return nil, fmt.Errorf("%s: %s", br.path, br.message)
	case errors.As(err, &qe):
		return nil, fmt.Errorf("filter%s: %s", qe.Path, qe.Message)
	}
	return plan, err
}

// exportPlan compiles an export request.
func (s *Server) exportPlan(ctx context.Context, req ExportRequest) (*exportjob.Plan, error) {
	format, err := export.ParseFormat(req.Format)
	if err != nil {
		return nil, invalid("format", "%s", err.Error())
	}
	var filter json.RawMessage
	switch hasFilter := len(bytes.TrimSpace(req.Filter)) > 0; {
	case req.Segment != "" && hasFilter:
		return nil, invalid("segment", "send a segment or a filter, not both")
	case req.Segment != "":
		_, found, err := getSegment(ctx, s.st, s.segmentIndex, req.Segment)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("segment %q: %w", req.Segment, ErrSegmentNotFound)
		}
		filter = segmentNode(req.Segment)
	case hasFilter:
		filter = req.Filter
	default:
		return nil, invalid("segment", `send {"segment": id} or {"filter": F}: what to export`)
	}
	q, err := s.compile(ctx, &searchRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	source, columns, err := s.exportSource(ctx, format, req.Fields)
	if err != nil {
		return nil, err
	}
	// The job runs outside this request: it keeps what its creator's
	// role masks, and its runner masks as it writes.
	plan := &exportjob.Plan{Format: format, Columns: columns, BOM: req.BOM && format == export.CSV, Mask: access.ViewFrom(ctx).MaskedFields()}
	if plan.Query, err = json.Marshal(q.query); err != nil {
		return nil, err
	}
	if plan.Source, err = json.Marshal(source); err != nil {
		return nil, err
	}
	return plan, nil
}

// exportSource is the _source of an export's hits and, for CSV, its
// columns: the fields asked for, else every field but the internal ones
// (NDJSON) or the catalog's default columns (CSV).
func (s *Server) exportSource(ctx context.Context, format export.Format, fields []string) (any, []string, error) {
	cat, err := s.fields.Catalog(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(fields) > 0 {
		include, err := projection(cat, fields)
		if err != nil {
			var br *badRequest
			if errors.As(err, &br) {
				br.code = "invalid_parameter"
			}
			return nil, nil, err
		}
		return map[string]any{"includes": include}, fields, nil
	}
	if format == export.CSV {
		columns := export.DefaultColumns(cat)
		return map[string]any{"includes": append([]string{"customer_id"}, columns...)}, columns, nil
	}
	return map[string]any{"excludes": schema.Internal}, nil, nil
}

// exportJobRequest is the body of POST /v1/exports.
type exportJobRequest struct {
	Segment     string                 `json:"segment"`
	Filter      json.RawMessage        `json:"filter"`
	Format      string                 `json:"format"`
	Fields      []string               `json:"fields"`
	BOM         bool                   `json:"bom"`
	Destination *exportjob.Destination `json:"destination"`
}

// topicName is what Kafka takes for a topic name.
var topicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

func (s *Server) createExport(c *gin.Context) {
	ctx := c.Request.Context()
	var req exportJobRequest
	if err := decodeBody(c, []string{"segment", "filter", "format", "fields", "bom", "destination"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	dest := exportjob.Destination{Type: exportjob.File}
	if req.Destination != nil {
		dest = *req.Destination
	}
	switch dest.Type {
	case exportjob.File:
		if dest.Topic != "" {
			s.failed(c, invalid("destination.topic", "a file destination takes no topic"))
			return
		}
	case exportjob.Kafka:
		if !topicName.MatchString(dest.Topic) || dest.Topic == "." || dest.Topic == ".." {
			s.failed(c, invalid("destination.topic", "destination.topic %q is not a Kafka topic name (1 to 249 of letters, digits, '.', '_', '-')", dest.Topic))
			return
		}
	default:
		s.failed(c, invalid("destination.type", `destination.type %q is not one of "file", "kafka"`, dest.Type))
		return
	}
	for i, f := range req.Fields {
		if strings.TrimSpace(f) == "" {
			s.failed(c, invalid(fmt.Sprintf("fields[%d]", i), "fields[%d] is empty", i))
			return
		}
	}
	plan, err := s.exportPlan(ctx, ExportRequest{Segment: req.Segment, Filter: req.Filter, Format: req.Format, Fields: req.Fields, BOM: req.BOM})
	if errors.Is(err, ErrSegmentNotFound) {
		writeError(c, http.StatusNotFound, "segment_not_found", fmt.Sprintf("no segment %q", req.Segment))
		return
	}
	if err != nil {
		s.failed(c, err)
		return
	}
	j := &exportjob.Job{ID: exportjob.NewID(), Status: exportjob.Queued, Segment: req.Segment, Fields: req.Fields,
		Destination: dest, Plan: *plan, CreatedAt: exportjob.Now(), CreatedBy: callerOf(c).Actor}
	if req.Segment == "" {
		j.Filter = compact(req.Filter)
	}
	// The job runs only once its audit record is written.
	c.Set(auditTargetKey, j.ID)
	if !s.auditNow(c, http.StatusAccepted) {
		return
	}
	if err := s.jobs.Create(ctx, j); err != nil {
		s.failed(c, err)
		return
	}
	s.log.Info("export job queued", "job", j.ID, "destination", dest.Type, "format", string(plan.Format), "request_id", c.GetString(requestIDKey))
	c.JSON(http.StatusAccepted, jobView(c, j))
}

// mayseeJob reports whether the caller sees job j: its creator does, and so
// do the roles that see everyone's jobs; to anyone else it is absent.
func (s *Server) mayseeJob(c *gin.Context, j *exportjob.Job) bool {
	caller := callerOf(c)
	return j.CreatedBy == caller.Actor || s.policy.SeesEveryonesJobs(caller.Role)
}

// jobView is job j as answered to the caller: its filter's personal
// values masked as the caller sees them.
func jobView(c *gin.Context, j *exportjob.Job) exportjob.View {
	v := j.View()
	v.Filter = callerOf(c).View.MaskFilter(v.Filter)
	return v
}

func (s *Server) listExports(c *gin.Context) {
	jobs, err := s.jobs.List(c.Request.Context())
	if err != nil {
		s.failed(c, err)
		return
	}
	out := make([]exportjob.View, 0, len(jobs))
	for i := range jobs {
		if s.mayseeJob(c, &jobs[i]) {
			out = append(out, jobView(c, &jobs[i]))
		}
	}
	c.JSON(http.StatusOK, gin.H{"exports": out})
}

// exportParam reads the job the path names, answering 404 itself when
// there is none or the caller may not see it.
func (s *Server) exportParam(c *gin.Context) (*exportjob.Job, exportjob.Version, bool) {
	id := c.Param("id")
	j, v, found, err := s.jobs.Get(c.Request.Context(), id)
	if err != nil {
		s.failed(c, err)
		return nil, v, false
	}
	if !found || !s.mayseeJob(c, j) {
		writeError(c, http.StatusNotFound, "export_not_found", fmt.Sprintf("no export job %q", id))
		return nil, v, false
	}
	return j, v, true
}

func (s *Server) getExport(c *gin.Context) {
	if j, _, ok := s.exportParam(c); ok {
		c.JSON(http.StatusOK, jobView(c, j))
	}
}

func (s *Server) cancelExport(c *gin.Context) {
	j, v, ok := s.exportParam(c)
	if !ok {
		return
	}
	j, err := s.jobs.CancelJob(c.Request.Context(), j, v)
	if err != nil {
		s.failed(c, err)
		return
	}
	if j == nil {
		writeError(c, http.StatusNotFound, "export_not_found", fmt.Sprintf("no export job %q", c.Param("id")))
		return
	}
	s.log.Info("export job cancel", "job", j.ID, "status", string(j.Status), "request_id", c.GetString(requestIDKey))
	c.JSON(http.StatusOK, jobView(c, j))
}

// downloadExport streams the file of a done job (its Range requests
// answered too, for a client resuming a download).
func (s *Server) downloadExport(c *gin.Context) {
	j, _, ok := s.exportParam(c)
	if !ok {
		return
	}
	for _, f := range callerOf(c).View.MaskedFields() {
		if !slices.Contains(j.Plan.Mask, f) {
			// Written for a role that sees more than this caller's.
			writeError(c, http.StatusForbidden, "forbidden", fmt.Sprintf("export job %s holds %s in clear, which this role sees masked", j.ID, f))
			return
		}
	}
	if j.Destination.Type != exportjob.File {
		writeError(c, http.StatusConflict, "not_downloadable", fmt.Sprintf("export job %s writes to the Kafka topic %q: there is no file to download", j.ID, j.Destination.Topic))
		return
	}
	if j.Status != exportjob.Done {
		writeError(c, http.StatusConflict, "export_not_done", fmt.Sprintf("export job %s is %s: its file can be downloaded once it is done", j.ID, j.Status))
		return
	}
	f, err := os.Open(exportjob.FilePath(s.cfg.ExportDir, j))
	if err != nil {
		s.log.Error("export file missing", "job", j.ID, "err", err, "request_id", c.GetString(requestIDKey))
		writeError(c, http.StatusGone, "export_file_gone", fmt.Sprintf("the file of export job %s is no longer there", j.ID))
		return
	}
	defer f.Close()
	h := c.Writer.Header()
	h.Set("Content-Type", j.Plan.Format.ContentType())
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, j.ID, j.Plan.Format))
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{}) // a large file outlasts the server's WriteTimeout
	finished, _ := time.Parse(time.RFC3339Nano, j.FinishedAt)
	http.ServeContent(c.Writer, c.Request, "", finished, f)
}
