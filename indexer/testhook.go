package indexer

import (
	"log/slog"
	"os"
	"sync"

	"cdp/store"
)

// StopBeforeWriteEnv names a test hook, for tests only: a `cdp index`
// started with it set to a customer id stops itself (SIGSTOP) once, right
// before the _bulk that writes that customer's document, after reading
// everything the write is made of. A test then plays a process paused past
// its session timeout, which wakes up (SIGCONT) to write what it read
// before another process took its partitions over (the fence of
// writeRound; testing/chaos/fence_test.go).
const StopBeforeWriteEnv = "CDP_TEST_STOP_BEFORE_WRITE"

// stopHook is the StopBeforeWriteEnv hook; nil when it is not set.
type stopHook struct {
	customerID string
	once       sync.Once
}

func newStopHook(log *slog.Logger) *stopHook {
	cid := os.Getenv(StopBeforeWriteEnv)
	if cid == "" {
		return nil
	}
	log.Warn("test hook set: the process stops itself before writing the customer's document", "env", StopBeforeWriteEnv, "customer_id", cid)
	return &stopHook{customerID: cid}
}

// beforeWrite stops the process, the first time ops write the customer's
// document, until it is sent SIGCONT.
func (h *stopHook) beforeWrite(ops []store.Op, log *slog.Logger) {
	if h == nil {
		return
	}
	for _, op := range ops {
		if op.ID != h.customerID {
			continue
		}
		h.once.Do(func() {
			log.Warn("test hook: stopping before writing the document", "customer_id", h.customerID, "pid", os.Getpid())
			if err := stopSelf(); err != nil {
				log.Error("test hook: could not stop", "err", err)
				return
			}
			log.Warn("test hook: continued", "customer_id", h.customerID)
		})
		return
	}
}
