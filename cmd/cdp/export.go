package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"cdp/api"
	"cdp/config"
	"cdp/export"
	"cdp/exportjob"
	"cdp/store"
)

// `cdp export` writes an audience to a file, standard output or a Kafka
// topic, for batch jobs and shells.
//
// It talks to OpenSearch itself, with the configuration every command
// takes (--opensearch-url, --index-prefix, …), not to the API: a batch
// job then needs no API process, runs at the speed of the point-in-time
// walk (no 429 from the API's export gate, no HTTP hop), and keeps its
// own checkpoint beside its output, so that --resume works whatever
// happened to the process. It plans the export with the API's own
// planner (api.Planner: the same filter parser, segment resolution and
// field checks) and writes through the same packages as export jobs
// (export and exportjob), so its output is byte for byte an export job's.

// exportOptions are the flags of `cdp export`.
type exportOptions struct {
	segment, filterFile string
	format              string
	fields              []string
	out, kafkaTopic     string
	checkpoint          string
	bom, resume         bool
	pageSize            int
}

func newExportCmd(cfg *config.Config) *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export (--segment ID | --filter-file FILE) [--out FILE|- | --kafka-topic NAME]",
		Short: "Export an audience (a segment or a filter) as NDJSON or CSV to a file, stdout or a Kafka topic",
		Long: `Export every member of a saved segment or of a filter (a JSON file, "-" for stdin),
once each, as NDJSON or CSV (CONTRACT §4.3), to a file, to standard output, or to a
Kafka topic (one record per member, key the customer id, value the NDJSON line).

A progress bar with the rate and the time left is drawn on standard error when it is
a terminal; otherwise the command is quiet and says only what went wrong. Writing to a
file or a topic keeps a checkpoint (FILE.cdp-export.json, or --checkpoint): after an
interruption, the same command with --resume goes on where it stopped, without writing
a member twice. The checkpoint is removed once the export is complete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err := runExport(ctx, cfg, o, os.Stdout, os.Stderr)
			if err != nil && ctx.Err() != nil {
				err = fmt.Errorf("%w (interrupted; the same command with --resume goes on from the last checkpoint)", err)
			}
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.segment, "segment", "", "id of the saved segment to export")
	f.StringVar(&o.filterFile, "filter-file", "", `file holding the filter to export, as JSON ("-": standard input)`)
	f.StringVar(&o.format, "format", "ndjson", "ndjson or csv")
	f.StringSliceVar(&o.fields, "fields", nil, "fields to export, comma separated (default: every field; for CSV the catalog's columns)")
	f.StringVar(&o.out, "out", "-", `output file ("-": standard output)`)
	f.StringVar(&o.kafkaTopic, "kafka-topic", "", "write to this Kafka topic instead of a file")
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file (default: the output file's name plus .cdp-export.json, or the topic's in the current directory)")
	f.BoolVar(&o.bom, "bom", false, "start a CSV with a UTF-8 byte-order mark, for Excel")
	f.BoolVar(&o.resume, "resume", false, "go on from the checkpoint of an interrupted export")
	f.IntVar(&o.pageSize, "page-size", export.DefaultPageSize, "members read per search, so per checkpoint")
	return cmd
}

// cliCheckpoint is what `cdp export` keeps beside its output: the plan
// and destination (a resume must write the same thing) and where it
// stood after its last page.
type cliCheckpoint struct {
	Version     int                   `json:"version"`
	Job         string                `json:"job"`
	Segment     string                `json:"segment,omitempty"`
	Filter      json.RawMessage       `json:"filter,omitempty"`
	Fields      []string              `json:"fields,omitempty"`
	Destination exportjob.Destination `json:"destination"`
	Out         string                `json:"out,omitempty"`
	Plan        exportjob.Plan        `json:"plan"`
	Total       int64                 `json:"total"`
	Exported    int64                 `json:"exported"`
	Last        string                `json:"last,omitempty"`
	Bytes       int64                 `json:"bytes"`
	Offsets     map[string]int64      `json:"offsets,omitempty"`
}

// sameRequest reports whether a checkpoint is of the export o asks for.
func (c *cliCheckpoint) sameRequest(o *cliCheckpoint) bool {
	return c.Segment == o.Segment && bytes.Equal(c.Filter, o.Filter) && slices.Equal(c.Fields, o.Fields) &&
		c.Destination == o.Destination && c.Out == o.Out && c.Plan.Format == o.Plan.Format && c.Plan.BOM == o.Plan.BOM
}

// saveCheckpoint writes the checkpoint so that a crash leaves the old one
// or the new one whole: a temporary file, fsynced, renamed over it.
func saveCheckpoint(path string, c *cliCheckpoint) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

func loadCheckpoint(path string) (*cliCheckpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--resume: no checkpoint %s: nothing to resume (run without --resume to start over)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("--resume: %w", err)
	}
	var c cliCheckpoint
	if err := json.Unmarshal(b, &c); err != nil || c.Version != 1 {
		return nil, fmt.Errorf("--resume: %s is not a cdp export checkpoint", path)
	}
	return &c, nil
}

// readFilter reads the filter file ("-": stdin) as JSON.
func readFilter(path string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--filter-file: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil || len(bytes.TrimSpace(b)) == 0 || bytes.TrimSpace(b)[0] != '{' {
		return nil, fmt.Errorf("--filter-file %s: not a JSON filter object", path)
	}
	return buf.Bytes(), nil
}

func runExport(ctx context.Context, cfg *config.Config, o *exportOptions, stdout io.Writer, stderr *os.File) error {
	want := &cliCheckpoint{Version: 1, Segment: o.segment, Fields: o.fields, Destination: exportjob.Destination{Type: exportjob.File}}
	switch {
	case (o.segment == "") == (o.filterFile == ""):
		return errors.New("name what to export: --segment ID or --filter-file FILE (one of them)")
	case o.kafkaTopic != "" && o.out != "-":
		return errors.New("--out and --kafka-topic are exclusive: write to a file or to a topic")
	case o.kafkaTopic != "":
		want.Destination = exportjob.Destination{Type: exportjob.Kafka, Topic: o.kafkaTopic}
	case o.out != "-":
		abs, err := filepath.Abs(o.out)
		if err != nil {
			return err
		}
		want.Out = abs
	}
	if o.filterFile != "" {
		f, err := readFilter(o.filterFile, os.Stdin)
		if err != nil {
			return err
		}
		want.Filter = f
	}
	cpPath := o.checkpoint
	switch {
	case cpPath != "":
	case want.Out != "":
		cpPath = want.Out + ".cdp-export.json"
	case want.Destination.Type == exportjob.Kafka:
		cpPath = want.Destination.Topic + ".cdp-export.json"
	}
	if o.resume && cpPath == "" {
		return errors.New("--resume needs a file or a topic to resume: standard output cannot be")
	}

	st, err := store.New(cfg.OpenSearchURL)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = st.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("OpenSearch at %s does not answer: %w", cfg.OpenSearchURL, err)
	}
	planner := api.NewPlanner(cfg, st)
	cp := want
	if o.resume {
		if cp, err = loadCheckpoint(cpPath); err != nil {
			return err
		}
		want.Plan.Format, want.Plan.BOM = cp.Plan.Format, cp.Plan.BOM
		if f, _ := export.ParseFormat(o.format); f != cp.Plan.Format || o.bom != cp.Plan.BOM || !cp.sameRequest(want) {
			return fmt.Errorf("--resume: checkpoint %s is of another export (%s %s to %s); run that one, or start over without --resume", cpPath, cp.Segment+string(cp.Filter), cp.Plan.Format, cp.Destination.Type+" "+cp.Out+cp.Destination.Topic)
		}
	} else {
		plan, err := planner.Plan(ctx, api.ExportRequest{Segment: o.segment, Filter: want.Filter, Format: o.format, Fields: o.fields, BOM: o.bom})
		if err != nil {
			return err
		}
		cp.Plan, cp.Job = *plan, exportjob.NewID()
		var resp struct {
			Count int64 `json:"count"`
		}
		if err := st.Do(ctx, http.MethodPost, "/"+planner.Customers()+"/_count", map[string]any{"query": plan.Query}, &resp); err != nil {
			return err
		}
		cp.Total = resp.Count
	}

	// The destination, opened where the checkpoint stands.
	var w export.Writer
	var sync func() error
	switch {
	case cp.Destination.Type == exportjob.Kafka:
		k, err := exportjob.OpenKafka(ctx, cfg.KafkaBrokers, cp.Destination.Topic, cp.Job, cp.Offsets)
		if err != nil {
			return err
		}
		defer k.Close()
		if cp.Offsets == nil {
			cp.Offsets, _ = k.Sync()
		}
		w = k
		sync = func() (err error) {
			cp.Offsets, err = k.Sync()
			return err
		}
	case cp.Out != "":
		f, err := exportjob.OpenFile(cp.Out, &cp.Plan, cp.Bytes)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f.Writer()
		sync = func() (err error) {
			cp.Bytes, err = f.Sync()
			return err
		}
	default:
		if w, err = cp.Plan.NewWriter(stdout, false); err != nil {
			return err
		}
		sync = w.Flush
	}
	if cpPath != "" {
		if err := saveCheckpoint(cpPath, cp); err != nil {
			return err
		}
	}

	bar := newBar(stderr, cp.Total, cp.Exported)
	delay, _ := time.ParseDuration(os.Getenv("CDP_TEST_EXPORT_PAGE_DELAY")) // a test hook: interrupt mid-way
	base := cp.Exported
	q := export.Query{Index: planner.Customers(), Query: cp.Plan.Query, Source: cp.Plan.Source, PageSize: o.pageSize, After: cp.Last}
	_, err = export.Stream(ctx, st, q, w, func(p export.Progress) error {
		if delay > 0 {
			time.Sleep(delay)
		}
		if err := sync(); err != nil {
			return err
		}
		cp.Exported = base + p.Written
		if p.Last != "" {
			cp.Last = p.Last
		}
		if bar != nil {
			_ = bar.Set64(cp.Exported)
		}
		if cpPath == "" {
			return nil
		}
		return saveCheckpoint(cpPath, cp)
	})
	if err == nil {
		err = sync()
	}
	if err != nil {
		if bar != nil {
			fmt.Fprintln(stderr)
		}
		if cpPath != "" {
			return fmt.Errorf("stopped after %d of %d members (checkpoint %s): %w", cp.Exported, cp.Total, cpPath, err)
		}
		return fmt.Errorf("stopped after %d of %d members: %w", cp.Exported, cp.Total, err)
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if cpPath != "" {
		if err := os.Remove(cpPath); err != nil {
			return fmt.Errorf("export complete, but its checkpoint stays: %w", err)
		}
	}
	return nil
}

// newBar is the progress bar on stderr when it is a terminal, else nil.
func newBar(stderr *os.File, total, done int64) *progressbar.ProgressBar {
	if !term.IsTerminal(int(stderr.Fd())) {
		return nil
	}
	bar := progressbar.NewOptions64(max(total, done, 1),
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("exporting"),
		progressbar.OptionSetItsString("members"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth())
	_ = bar.Set64(done)
	return bar
}
