package store

import (
	"context"
	"fmt"
	"net/http"

	"cdp/mapping"
)

// EnsureIndices creates each index with its embedded mapping and its alias,
// unless the alias already exists. Two processes starting at once are fine:
// the loser's "already exists" is not an error.
func (c *Client) EnsureIndices(ctx context.Context, prefix string, indices ...mapping.Index) error {
	for _, idx := range indices {
		err := c.Do(ctx, http.MethodHead, "/_alias/"+idx.Alias(prefix), nil, nil)
		if err == nil {
			continue
		}
		if StatusOf(err) != http.StatusNotFound {
			return fmt.Errorf("store: check alias %s: %w", idx.Alias(prefix), err)
		}
		body, err := idx.CreateBody(prefix)
		if err != nil {
			return err
		}
		err = c.Do(ctx, http.MethodPut, "/"+idx.Physical(prefix), body, nil)
		if err != nil {
			var e *Error
			if ok := asError(err, &e); ok && e.Type == "resource_already_exists_exception" {
				continue
			}
			return fmt.Errorf("store: create index %s: %w", idx.Physical(prefix), err)
		}
	}
	return nil
}

// DeleteIndices removes every index behind the service's aliases for the
// prefix; tests use it to leave nothing behind.
func (c *Client) DeleteIndices(ctx context.Context, prefix string, indices ...mapping.Index) error {
	for _, idx := range indices {
		err := c.Do(ctx, http.MethodDelete, "/"+idx.Physical(prefix), nil, nil)
		if err != nil && StatusOf(err) != http.StatusNotFound {
			return err
		}
	}
	return nil
}
