//go:build !unix

package indexer

import "errors"

func stopSelf() error { return errors.New("SIGSTOP needs a unix system") }
