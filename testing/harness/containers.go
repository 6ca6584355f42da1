package harness

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
)

// Images used when no endpoints are given and a Docker engine answers.
const (
	openSearchImage = "opensearchproject/opensearch"
	openSearchTag   = "3.6.0"
	kafkaImage      = "apache/kafka"
	kafkaTag        = "4.3.1"
	redisImage      = "redis"
	redisTag        = "7"
)

// startContainers fills the missing endpoints of e with containers. The
// containers expire on their own after an hour, so a killed test run
// leaves nothing behind for long.
func startContainers(e *Env) (*Env, error) {
	pool, err := dockertest.NewPool("")
	if err == nil {
		err = pool.Client.Ping()
	}
	if err != nil {
		return nil, fmt.Errorf("no endpoints in the environment and no Docker engine answers (%v)", err)
	}
	pool.MaxWait = 3 * time.Minute
	run := func(opts *dockertest.RunOptions) (*dockertest.Resource, error) {
		r, err := pool.RunWithOptions(opts, func(hc *docker.HostConfig) {
			hc.AutoRemove = true
			hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
		})
		if err == nil {
			_ = r.Expire(3600)
		}
		return r, err
	}
	if e.OpenSearchURL == "" {
		r, err := run(&dockertest.RunOptions{Repository: openSearchImage, Tag: openSearchTag,
			Env: []string{"discovery.type=single-node", "DISABLE_SECURITY_PLUGIN=true", "OPENSEARCH_JAVA_OPTS=-Xms1g -Xmx1g"}})
		if err != nil {
			return nil, fmt.Errorf("start opensearch: %w", err)
		}
		e.OpenSearchURL = "http://" + r.GetHostPort("9200/tcp")
		if err := pool.Retry(func() error {
			resp, err := http.Get(e.OpenSearchURL + "/_cluster/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status)
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("opensearch container never became healthy: %w", err)
		}
	}
	if e.RedisAddr == "" {
		r, err := run(&dockertest.RunOptions{Repository: redisImage, Tag: redisTag})
		if err != nil {
			return nil, fmt.Errorf("start redis: %w", err)
		}
		e.RedisAddr = r.GetHostPort("6379/tcp")
	}
	if len(e.KafkaBrokers) == 0 {
		// Kafka must advertise the address clients dial, so it gets a fixed
		// host port.
		const port = "19092"
		r, err := run(&dockertest.RunOptions{Repository: kafkaImage, Tag: kafkaTag,
			PortBindings: map[docker.Port][]docker.PortBinding{"19092/tcp": {{HostIP: "127.0.0.1", HostPort: port}}},
			ExposedPorts: []string{"19092/tcp"},
			Env: []string{
				"KAFKA_NODE_ID=1", "KAFKA_PROCESS_ROLES=broker,controller",
				"KAFKA_LISTENERS=PLAINTEXT://0.0.0.0:19092,CONTROLLER://localhost:9093",
				"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:" + port,
				"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER", "KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
				"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
				"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0", "KAFKA_NUM_PARTITIONS=4",
			}})
		if err != nil {
			return nil, fmt.Errorf("start kafka: %w", err)
		}
		_ = r
		e.KafkaBrokers = []string{"127.0.0.1:" + port}
	}
	return e, nil
}
