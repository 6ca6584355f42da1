package indexer

import (
	"context"
	"time"

	"cdp/membership"
)

// Members is what stage 2 needs of membership (package membership): the
// tags a rebuilt document carries, and the re-evaluation of the customers
// whose documents were just written.
type Members interface {
	TagsOf(ctx context.Context, cids []string) (map[string][]string, error)
	Changed(ctx context.Context, cids []string) error
	Republish(ctx context.Context) (int, error)
}

// TopicMembership is the topic of membership changes (CONTRACT §4.2).
const TopicMembership = membership.TopicSuffix

// republishEvery is how often records stored but left unpublished (by a
// process stopped between the two) are looked for.
const republishEvery = 30 * time.Second

// membershipChanged re-evaluates the customers whose documents a batch
// wrote or deleted.
func (ix *Indexer) membershipChanged(ctx context.Context, cids []string) error {
	if ix.members == nil || len(cids) == 0 {
		return nil
	}
	return ix.step(ctx, "membership", func() error { return ix.members.Changed(ctx, cids) })
}

// tagsOf reads the tags of the customers about to be rebuilt.
func (ix *Indexer) tagsOf(ctx context.Context, cids []string) (map[string][]string, error) {
	if ix.members == nil {
		return nil, nil
	}
	return ix.members.TagsOf(ctx, cids)
}

// republish publishes pending membership records on start and then every
// republishEvery, until ctx ends.
func (ix *Indexer) republish(ctx context.Context) {
	if ix.members == nil {
		return
	}
	t := time.NewTicker(republishEvery)
	defer t.Stop()
	for {
		n, err := ix.members.Republish(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			ix.log.Warn("membership: republishing pending records failed", "err", err)
		case n > 0:
			ix.log.Info("membership: republished pending records", "records", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
