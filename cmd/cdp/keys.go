package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"cdp/access"
	"cdp/config"
	"cdp/mapping"
	"cdp/store"
)

// newKeysCmd is `cdp keys create|list|revoke`: API keys of the deployment
// the configuration names (its OpenSearch and index prefix), written
// where the service reads them.
func newKeysCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Create, list and revoke API keys"}
	open := func(ctx context.Context) (*access.Keys, error) {
		st, err := store.New(cfg.OpenSearchURL)
		if err != nil {
			return nil, err
		}
		if err := st.EnsureIndices(ctx, cfg.IndexPrefix, mapping.APIKeys); err != nil {
			return nil, err
		}
		return access.NewKeys(st, mapping.APIKeys.Alias(cfg.IndexPrefix)), nil
	}
	var name, role string
	create := &cobra.Command{Use: "create", Short: "Create a key; it is printed once, alone on the last line", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if _, ok := cfg.Roles[role]; !ok {
				return fmt.Errorf("--role %q is not a role of the roles file", role)
			}
			ctx, cancel := context.WithTimeout(c.Context(), time.Minute)
			defer cancel()
			keys, err := open(ctx)
			if err != nil {
				return err
			}
			k, token, err := keys.Create(ctx, name, role)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "created key %s (name %s, role %s); it is shown this once:\n%s\n", k.ID, k.Name, k.Role, token)
			return nil
		}}
	create.Flags().StringVar(&name, "name", "", "who or what the key is for (sales keys: the owner_id they see)")
	create.Flags().StringVar(&role, "role", "", "the key's role (admin, marketer, sales, service, ingest or one of the roles file)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")
	list := &cobra.Command{Use: "list", Short: "List the keys (never their tokens)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			keys, err := open(c.Context())
			if err != nil {
				return err
			}
			all, err := keys.List(c.Context())
			if err != nil {
				return err
			}
			for _, k := range all {
				state := "active"
				if k.RevokedAt != nil {
					state = "revoked " + k.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(c.OutOrStdout(), "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, state)
			}
			return nil
		}}
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke a key", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			keys, err := open(c.Context())
			if err != nil {
				return err
			}
			_, found, err := keys.Revoke(c.Context(), args[0])
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("no key %s", args[0])
			}
			fmt.Fprintf(c.OutOrStdout(), "revoked key %s\n", args[0])
			return nil
		}}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
