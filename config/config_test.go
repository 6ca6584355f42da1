package config

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"cdp/identity"
)

func load(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	c := &Config{}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.Register(fs, func(k string) string { return env[k] })
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c, c.Validate()
}

func TestDefaultsMatchTheContract(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenSearchURL != "http://127.0.0.1:9200" || c.KafkaBrokers[0] != "127.0.0.1:9092" ||
		c.RedisAddr != "127.0.0.1:6379" || c.HTTPAddr != "127.0.0.1:8080" || c.IndexPrefix != "cdp" ||
		c.TopicPrefix != "cdp." || c.ConsumerGroup != "cdp-indexer" || c.Location.String() != "Asia/Shanghai" {
		t.Fatalf("defaults differ from CONTRACT §5: %+v", c)
	}
	if got := c.Topic("cdc.orders"); got != "cdp.cdc.orders" {
		t.Fatalf("Topic = %q", got)
	}
}

func TestFlagsWinOverTheEnvironmentWhichWinsOverDefaults(t *testing.T) {
	env := map[string]string{"CDP_INDEX_PREFIX": "envp", "CDP_TOPIC_PREFIX": "env.", "CDP_KAFKA_BROKERS": "a:1,b:2"}
	c, err := load(t, env, "--index-prefix", "flagp")
	if err != nil {
		t.Fatal(err)
	}
	if c.IndexPrefix != "flagp" || c.TopicPrefix != "env." || len(c.KafkaBrokers) != 2 {
		t.Fatalf("got %+v", c)
	}
}

func TestValidateNamesEveryBadSetting(t *testing.T) {
	tests := []struct {
		flag, value, want string
	}{
		{"--opensearch-url", "localhost:9200", "opensearch-url"},
		{"--index-prefix", "Bad Prefix", "index-prefix"},
		{"--timezone", "Mars/Olympus", "timezone"},
		{"--redis-addr", "nohost", "redis-addr"},
		{"--batch-size", "0", "batch-size"},
		{"--rebuild-batch-size", "0", "rebuild-batch-size"},
		{"--source-lanes", "0", "source-lanes"},
		{"--memory-limit-mib", "8", "memory-limit-mib"},
		{"--log-level", "loud", "log-level"},
		{"--kafka-brokers", " ", "kafka-brokers"},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			_, err := load(t, nil, tt.flag, tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

func TestArgsReproduceEverySetting(t *testing.T) {
	env := map[string]string{"CDP_INDEX_PREFIX": "p1", "CDP_BATCH_SIZE": "7", "CDP_BATCH_WAIT": "3s", "CDP_TIMEZONE": "UTC",
		"CDP_MAX_DYNAMIC_FIELDS": "9", "CDP_LOG_LEVEL": "warn", "CDP_KAFKA_BROKERS": "a:1,b:2", "CDP_SHUTDOWN_GRACE": "4s", "CDP_REBUILD_BATCH_SIZE": "11", "CDP_SOURCE_LANES": "3", "CDP_MEMORY_LIMIT_MIB": "64"}
	env["CDP_IDENTITY_RULES"] = writeRules(t, `{"types": {"phone": {"max_per_profile": 2}}}`)
	want, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := load(t, nil, want.Args()...)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("from Args:\n got  %+v\n want %+v", got, want)
	}
}

func writeRules(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTheIdentityRulesAreTheDefaultsUnlessAFileIsGiven(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity != identity.DefaultRules() {
		t.Errorf("no file: rules %v, want the defaults", c.Identity)
	}
	c, err = load(t, map[string]string{"CDP_IDENTITY_RULES": writeRules(t, `{"types": {"email": {"max_per_profile": 1}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Identity.MaxPerProfile(identity.Email); got != 1 {
		t.Errorf("email max per profile %d, want the file's 1", got)
	}
}

func TestABadIdentityRulesFileIsRefusedNamingTheTypeAndKey(t *testing.T) {
	for _, tt := range []struct{ name, path, want string }{
		{"a bad key", writeRules(t, `{"types": {"phone": {"max_per_profil": 2}}}`), `type "phone": unknown key "max_per_profil"`},
		{"a missing file", filepath.Join(t.TempDir(), "nope.yaml"), "nope.yaml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, nil, "--identity-rules", tt.path)
			if err == nil || !strings.Contains(err.Error(), "identity-rules") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want identity-rules and %q", err, tt.want)
			}
		})
	}
}

func TestTheIdentityCacheIsSizedFromTheMemoryLimitInForce(t *testing.T) {
	const none = math.MaxInt64
	eighthOf := func(mib int) int { return (mib << 20) / 8 / identity.CacheEntryBytes }
	for _, c := range []struct {
		name         string
		runtimeLimit int64
		limitMiB     int
		want         int
	}{
		{"the default limit, applied", 192 << 20, 192, eighthOf(192)},
		{"the default limit, not applied (an indexer inside a test)", none, 192, eighthOf(192)},
		{"GOMEMLIMIT wins over the flag", 512 << 20, 192, eighthOf(512)},
		{"no limit at all keeps the old size", none, 0, MaxIdentityCacheEntries},
		{"a tiny limit keeps the least", 32 << 20, 32, max(eighthOf(32), MinIdentityCacheEntries)},
		{"a huge limit keeps the most", 64 << 30, 0, MaxIdentityCacheEntries},
	} {
		if got := identityCacheEntries(c.runtimeLimit, c.limitMiB); got != c.want {
			t.Errorf("%s: %d entries, want %d", c.name, got, c.want)
		}
	}
	// The default fills at most the share it is given.
	if got := identityCacheEntries(192<<20, 192) * identity.CacheEntryBytes; got > 24<<20 {
		t.Errorf("the default cache takes %d MiB full", got>>20)
	}
}

func TestTheConsolesOIDCClientIDIsTheAudienceUnlessSet(t *testing.T) {
	env := map[string]string{"CDP_OIDC_ISSUER": "https://login.example.com/realms/cdp", "CDP_OIDC_AUDIENCE": "cdp"}
	c, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.OIDCClientID != "cdp" {
		t.Errorf("client id %q, want the audience", c.OIDCClientID)
	}
	env["CDP_OIDC_CLIENT_ID"] = "cdp-console"
	if c, err = load(t, env); err != nil || c.OIDCClientID != "cdp-console" {
		t.Errorf("client id %q (%v), want cdp-console", c.OIDCClientID, err)
	}
	if _, err := load(t, map[string]string{"CDP_OIDC_ISSUER": "login.example.com", "CDP_OIDC_AUDIENCE": "cdp"}); err == nil || !strings.Contains(err.Error(), "oidc-issuer") {
		t.Errorf("an issuer that is no URL: err = %v", err)
	}
}
