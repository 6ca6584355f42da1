package exportjob

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cdp/export"
)

// write writes the documents of ids through the sink and syncs it.
func write(t *testing.T, s *FileSink, ids ...string) int64 {
	t.Helper()
	for _, id := range ids {
		if err := s.Writer().Write(json.RawMessage(`{"customer_id":"` + id + `","name":"a,b"}`)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Sync()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAResumedFileIsCutToItsCheckpointAndGoesOnWithoutASecondHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan Plan
		want string
	}{
		{"NDJSON", Plan{Format: export.NDJSON},
			"{\"customer_id\":\"a\",\"name\":\"a,b\"}\n{\"customer_id\":\"b\",\"name\":\"a,b\"}\n{\"customer_id\":\"c\",\"name\":\"a,b\"}\n"},
		{"CSV with a byte-order mark", Plan{Format: export.CSV, Columns: []string{"name"}, BOM: true},
			"\uFEFFcustomer_id,name\r\na,\"a,b\"\r\nb,\"a,b\"\r\nc,\"a,b\"\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "job")
			s, err := OpenFile(path, &tc.plan, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkpoint := write(t, s, "a", "b")
			write(t, s, "c", "d") // past the checkpoint: a runner killed before recording it
			s.Close()

			s, err = OpenFile(path, &tc.plan, checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			write(t, s, "c")
			s.Close()
			got, _ := os.ReadFile(path)
			if string(got) != tc.want {
				t.Errorf("file:\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestAFileShorterThanItsCheckpointIsNotResumed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job")
	if err := os.WriteFile(path, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(path, &Plan{Format: export.NDJSON}, 100); err == nil || !strings.Contains(err.Error(), "less than its checkpoint") {
		t.Errorf("OpenFile: %v, want an error saying the file is shorter than its checkpoint", err)
	}
}

func TestAJobViewSaysNullUntilItEnds(t *testing.T) {
	j := &Job{ID: "exp_1", Status: Running, Exported: 3, Total: 9, CreatedAt: "2026-01-01T00:00:00Z", Plan: Plan{Format: export.CSV},
		Destination: Destination{Type: File}, Last: "c", Bytes: 10, Fence: 2}
	b, _ := json.Marshal(j.View())
	for _, want := range []string{`"finished_at":null`, `"error":null`, `"status":"running"`, `"exported":3`, `"total":9`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("view %s has no %s", b, want)
		}
	}
	if strings.Contains(string(b), `"fence"`) || strings.Contains(string(b), `"last"`) {
		t.Errorf("view %s shows the checkpoint", b)
	}
}

func TestRetryBacksOffUntilItSucceedsOrItsTimeIsUp(t *testing.T) {
	calls := 0
	err := retry(context.Background(), time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("retry: %v after %d calls, want success on the third", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retry(ctx, time.Minute, func() error { return errors.New("down") }); !errors.Is(err, context.Canceled) {
		t.Errorf("retry under a cancelled context: %v", err)
	}
}

func TestANewRunnerCopiesThePartBeforeItCutToTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	j := &Job{ID: "exp_1", Plan: Plan{Format: export.NDJSON}, Part: "exp_1.1.part", Bytes: 4}
	if err := os.WriteFile(filepath.Join(dir, j.Part), []byte("abcdXYZ"), 0o644); err != nil {
		t.Fatal(err)
	}
	path, dropped, err := takePart(dir, j, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if filepath.Base(path) != "exp_1.2.part" || string(got) != "abcd" || dropped != 3 {
		t.Errorf("part %s holds %q, dropped %d; want exp_1.2.part holding abcd, 3 dropped", path, got, dropped)
	}
	// The runner before may have finished and renamed its part.
	if err := publish(path, FilePath(dir, j)); err != nil {
		t.Fatal(err)
	}
	j.Part = "exp_1.2.part"
	path, _, err = takePart(dir, j, 3)
	if got, _ := os.ReadFile(path); err != nil || string(got) != "abcd" {
		t.Errorf("from the published file: %q, %v", got, err)
	}
}
