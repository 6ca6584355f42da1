package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"cdp/testing/harness"
)

// cli returns `cdp export` with the audience's configuration and args.
func (a *audience) cli(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(harness.CDPBinary(t), append(append([]string{"export"}, a.cfg.Args()...), args...)...)
	cmd.Env = os.Environ()
	return cmd
}

func TestCdpExportDrawsAProgressBarOnATerminal(t *testing.T) {
	const n = 3000
	a := newAudience(t, n)
	out := filepath.Join(t.TempDir(), "aud.csv")
	cmd := a.cli(t, "--segment", a.segment, "--format", "csv", "--fields", "name", "--bom", "--out", out, "--page-size", "200")
	cmd.Env = append(cmd.Env, "CDP_TEST_EXPORT_PAGE_DELAY=40ms")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var screen bytes.Buffer
	_, err = io.Copy(&screen, tty) // ends with EIO once the command exits
	var pathErr *os.PathError
	if err != nil && !(errors.As(err, &pathErr) && errors.Is(err, syscall.EIO)) {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cdp export: %v\n%s", err, screen.String())
	}
	s := screen.String()
	for _, want := range []string{"exporting", "100%", "(3000/3000", "members/s", "["} {
		if !strings.Contains(s, want) {
			t.Errorf("the terminal shows no %q:\n%q", want, s)
		}
	}
	if strings.Count(s, "%") < 3 {
		t.Errorf("the bar was drawn %d times; want it to move:\n%q", strings.Count(s, "%"), s)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(body, []byte("\uFEFF")) {
		t.Error("--bom: the CSV does not start with the byte-order mark")
	}
	onceEach(t, idsOf(t, "csv", body), n)
	if _, err := os.Stat(out + ".cdp-export.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the checkpoint of a complete export is still there (%v)", err)
	}
}

func TestCdpExportIsQuietWithoutATerminal(t *testing.T) {
	const n = 1500
	a := newAudience(t, n)
	filter := filepath.Join(t.TempDir(), "filter.json")
	if err := os.WriteFile(filter, []byte(`{"field": "tags", "op": "eq", "value": "aud"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := a.cli(t, "--filter-file", filter, "--fields", "name", "--page-size", "400")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cdp export: %v\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr is not a terminal, yet the command wrote to it:\n%s", stderr.String())
	}
	onceEach(t, idsOf(t, "ndjson", stdout.Bytes()), n)
}

func TestCdpExportResumesAfterBeingKilledWithEveryMemberOnce(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		kafka        bool
	}{
		{name: "an NDJSON file", format: "ndjson"},
		{name: "a CSV file", format: "csv"},
		{name: "a Kafka topic", format: "ndjson", kafka: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3000
			a := newAudience(t, n)
			dir := t.TempDir()
			out := filepath.Join(dir, "aud."+tc.format)
			checkpoint := out + ".cdp-export.json"
			topic := a.cfg.Topic("cli-audience")
			args := []string{"--segment", a.segment, "--format", tc.format, "--fields", "name", "--page-size", "100"}
			if tc.kafka {
				args = append(args, "--kafka-topic", topic, "--checkpoint", checkpoint)
			} else {
				args = append(args, "--out", out)
			}
			first := a.cli(t, args...)
			first.Env = append(first.Env, "CDP_TEST_EXPORT_PAGE_DELAY=60ms")
			var stderr bytes.Buffer
			first.Stderr = &stderr
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- first.Wait() }()
			var cp cliCheckpoint
			harness.Eventually(t, time.Minute, func() (bool, string) {
				select {
				case err := <-exited:
					t.Fatalf("cdp export exited (%v) before it could be killed:\n%s", err, stderr.String())
				default:
				}
				b, err := os.ReadFile(checkpoint)
				if err != nil || json.Unmarshal(b, &cp) != nil {
					return false, "no checkpoint yet"
				}
				if cp.Exported < 500 {
					return false, "checkpoint at " + cp.Last
				}
				if tc.kafka {
					return true, ""
				}
				// A page written past the checkpoint: what the resume
				// must cut off.
				st, err := os.Stat(out)
				return err == nil && st.Size() > cp.Bytes, "no page past the checkpoint yet"
			})
			// Killed after a page was written and before its checkpoint
			// (the delay sits there), most likely.
			_ = first.Process.Kill()
			<-exited

			resume := a.cli(t, append(args, "--resume")...)
			var out2, err2 bytes.Buffer
			resume.Stdout, resume.Stderr = &out2, &err2
			if err := resume.Run(); err != nil {
				t.Fatalf("cdp export --resume: %v\n%s", err, err2.String())
			}
			if err2.Len() != 0 {
				t.Errorf("--resume without a terminal wrote to stderr:\n%s", err2.String())
			}
			if _, err := os.Stat(checkpoint); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the checkpoint of a complete export is still there (%v)", err)
			}
			if tc.kafka {
				onceEach(t, topicIDs(t, a.env, topic, cp.Job), n)
				return
			}
			body, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			onceEach(t, idsOf(t, tc.format, body), n)
		})
	}
}

func TestCdpExportFailsWithANonZeroExitAndSaysWhy(t *testing.T) {
	a := newAudience(t, 10)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown segment", []string{"--segment", "seg_missing"}, `segment "seg_missing": no such segment`},
		{"an unknown field", []string{"--segment", a.segment, "--fields", "nope"}, `fields[0]: unknown field "nope"`},
		{"an unknown format", []string{"--segment", a.segment, "--format", "xml"}, `: format "xml" is not one of ndjson, csv`},
		{"neither a segment nor a filter", nil, "--segment ID or --filter-file FILE"},
		{"a filter file that is not JSON", []string{"--filter-file", "/dev/null"}, "not a JSON filter object"},
		{"a resume with nothing to resume", []string{"--segment", a.segment, "--out", filepath.Join(dir, "x.ndjson"), "--resume"}, "nothing to resume"},
		{"an unreachable OpenSearch", []string{"--segment", a.segment, "--opensearch-url", "http://127.0.0.1:1"}, "does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := a.cli(t, tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("exit %v, want a non-zero exit; stderr:\n%s", err, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), "cdp: export: ") || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want a message with %q", stderr.String(), tc.want)
			}
		})
	}
}
