//go:build unix

package indexer

import (
	"os"
	"os/signal"
	"syscall"
)

// stopSelf stops the whole process and returns once it is continued. The
// process stops a moment after kill returns (the kernel may hand the stop
// to another thread first), so it waits for the SIGCONT: without that the
// caller's write could slip out before the stop.
func stopSelf() error {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
		return err
	}
	<-cont
	return nil
}
