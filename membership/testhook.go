package membership

import (
	"log/slog"
	"os"
	"slices"
)

// KillBeforePublishEnv names a test hook, for tests only: a process whose
// engine starts with it set to a definition's id (a segment id or a tag
// rule's name) kills itself (SIGKILL, as kill -9) right after it stored a
// membership whose pending records hold a flip of that definition, and
// before it publishes them. A test then restarts the process and checks
// that the flip is published all the same (Republish on start, or the
// replay of the change), once after de-duplication by message id. It is
// read once, when the engine is made.
const KillBeforePublishEnv = "CDP_TEST_KILL_BEFORE_PUBLISH"

// killHook is the KillBeforePublishEnv hook; nil when it is not set.
type killHook struct{ id string }

func newKillHook(log *slog.Logger) *killHook {
	id := os.Getenv(KillBeforePublishEnv)
	if id == "" {
		return nil
	}
	log.Warn("test hook set: the process kills itself after storing a flip of the definition, before publishing it", "env", KillBeforePublishEnv, "definition", id)
	return &killHook{id: id}
}

// stored is called with a state just written: it kills the process when
// the state's new records flip the hook's definition. It does not return
// then.
func (h *killHook) stored(s State, log *slog.Logger) {
	if h == nil || !slices.ContainsFunc(s.Pending, func(r Record) bool { return r.ID == h.id }) {
		return
	}
	log.Warn("test hook: killing the process before publishing", "customer_id", s.CustomerID, "definition", h.id, "pid", os.Getpid())
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		err = p.Kill()
	}
	if err != nil {
		log.Error("test hook: could not kill the process", "err", err)
		return
	}
	select {} // until the signal lands: nothing is published meanwhile
}
