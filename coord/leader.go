package coord

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
)

// leaseExpiry is how long a leader's lease holds without an extension: a
// leader that dies hands over within it.
const leaseExpiry = 30 * time.Second

// leases are the leader locks this process holds, by name.
type leases struct {
	mu sync.Mutex
	m  map[string]*redsync.Mutex
}

// Lead says whether this process leads the periodic work called name
// across the deployment's processes: it takes the lease when no one holds
// it and extends it when it does. Call it more often than every 30 s
// to keep the lead. Redis unreachable is an error: no one leads then.
func (c *Coordinator) Lead(ctx context.Context, name string) (bool, error) {
	c.leases.mu.Lock()
	defer c.leases.mu.Unlock()
	if c.leases.m == nil {
		c.leases.m = map[string]*redsync.Mutex{}
	}
	if m := c.leases.m[name]; m != nil {
		if ok, err := m.ExtendContext(ctx); ok && err == nil {
			return true, nil
		}
		delete(c.leases.m, name)
	}
	m := c.rs.NewMutex("cdp:"+c.prefix()+":leader:"+name, redsync.WithExpiry(leaseExpiry), redsync.WithTries(1))
	if err := m.TryLockContext(ctx); err != nil {
		var taken *redsync.ErrTaken
		if errors.As(err, &taken) || errors.Is(err, redsync.ErrFailed) {
			return false, nil
		}
		return false, err
	}
	c.leases.m[name] = m
	return true, nil
}
