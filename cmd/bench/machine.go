package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine is what the numbers were measured on.
type Machine struct {
	Hostname          string  `json:"hostname"`
	NProc             int     `json:"nproc"`
	MemoryGiB         float64 `json:"memory_gib"`
	CPUModel          string  `json:"cpu_model"`
	Kernel            string  `json:"kernel"`
	LoadAvgAtStart    string  `json:"load_average_at_start"`
	OpenSearchVersion string  `json:"opensearch_version"`
	KafkaVersion      string  `json:"kafka_version"`
	GoVersion         string  `json:"go_version"`
	GitCommit         string  `json:"git_commit"`
	Date              string  `json:"date"`
}

func machineInfo(ctx context.Context, os_ endpoint) Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339)}
	m.Hostname, _ = os.Hostname()
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
				m.MemoryGiB = round2(kb / (1 << 20))
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvgAtStart = strings.Join(f[:3], " ")
		}
	}
	var root struct {
		Version struct {
			Distribution string `json:"distribution"`
			Number       string `json:"number"`
		} `json:"version"`
	}
	if err := os_.json(ctx, http.MethodGet, "/", nil, &root); err == nil {
		m.OpenSearchVersion = strings.TrimSpace(root.Version.Distribution + " " + root.Version.Number)
	}
	m.KafkaVersion = kafkaVersion()
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.GitCommit += "+dirty"
		}
	}
	return m
}

// kafkaVersion is the version of the Kafka that scripts/deps.sh installed
// (its directory under the cache), else the one deps/kafka/pom.xml names.
// The Kafka protocol does not tell a broker's release.
func kafkaVersion() string {
	if v := os.Getenv("CDP_KAFKA_VERSION"); v != "" {
		return v + " (CDP_KAFKA_VERSION)"
	}
	cache := os.Getenv("CDP_CACHE_DIR")
	if cache == "" {
		cache = ".cache"
	}
	if dirs, _ := filepath.Glob(filepath.Join(cache, "opt", "kafka-*")); len(dirs) > 0 {
		return strings.TrimPrefix(filepath.Base(dirs[len(dirs)-1]), "kafka-")
	}
	if b, err := os.ReadFile("deps/kafka/pom.xml"); err == nil {
		if m := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(b); m != nil {
			return string(m[1]) + " (deps/kafka/pom.xml)"
		}
	}
	return "unknown"
}
