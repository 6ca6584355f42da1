package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/IBM/sarama"

	"cdp/store"
	"cdp/wire"
)

// errClass is what retrying can do about an error. classify is the one
// place that decides it, for every error the indexer meets: OpenSearch's
// answers (store), Kafka's (sarama), the wire decoders' and the context's.
// Package store knows nothing of Kafka, so the classifier that knows both
// lives here.
type errClass int

const (
	// classTransient: retrying can cure it (OpenSearch or Kafka down,
	// overloaded, failing over, or blocked until an operator acts). The
	// step is retried with backoff while the context lives: the stream
	// pauses, it never drops a message.
	classTransient errClass = iota
	// classPermanent: the same request fails however often it is sent. It
	// is never retried: the message is dead-lettered with the reason, a
	// batch OpenSearch refuses as a whole is split down to the one
	// message, and a dead letter the broker refuses is written smaller.
	classPermanent
	// classStop: the indexer is stopping (its context ended). Neither
	// retried nor dead-lettered: the batch stays uncommitted and is
	// replayed by whoever owns its partitions next.
	classStop
)

func (c errClass) String() string {
	switch c {
	case classPermanent:
		return "permanent"
	case classStop:
		return "stop"
	}
	return "transient"
}

// classify tells what retrying can do about err. An error made of several
// (errors.Join, sarama.ProducerErrors, fmt.Errorf with two %w) is as bad
// as its worst part: stop, then permanent, then transient. An error
// nobody classified is transient: it pauses the stream, logged and counted
// in cdp_indexer_retries_total, rather than dead-lettering messages that
// may be fine; a new permanent error found that way gets its case here.
func classify(err error) errClass {
	switch e := err.(type) {
	case nil:
		return classTransient
	case sarama.ProducerErrors: // has no Unwrap
		errs := make([]error, len(e))
		for i, pe := range e {
			errs[i] = pe.Err
		}
		return worst(errs)
	case interface{ Unwrap() []error }:
		return worst(e.Unwrap())
	case *store.ItemError:
		// store.Judge already told whether the item may succeed later.
		if e.Outcome == store.Refused {
			return classPermanent
		}
		return classTransient
	case *store.Error:
		return classifyOpenSearch(e)
	case sarama.KError:
		return classifyKafka(e)
	case sarama.ConfigurationError:
		// Raised before sending: a record over Producer.MaxMessageBytes.
		return classPermanent
	case *json.UnsupportedValueError, *json.UnsupportedTypeError, *json.MarshalerError:
		// A body that cannot be encoded (NaN, +Inf) never will be.
		return classPermanent
	}
	switch {
	case err == context.Canceled:
		return classStop
	case err == wire.ErrBad:
		return classPermanent
	case err == store.ErrUnreachable, err == context.DeadlineExceeded:
		return classTransient
	}
	if inner := errors.Unwrap(err); inner != nil {
		return classify(inner)
	}
	return classTransient
}

func worst(errs []error) errClass {
	c := classTransient
	for _, err := range errs {
		if err != nil {
			c = max(c, classify(err))
		}
	}
	return c
}

// classifyOpenSearch: overload (429), failures (5xx), timeouts (408) and
// blocks (a read-only index answers 403 cluster_block_exception) pass;
// so does a version conflict on a whole request (409: the document moved
// meanwhile, a retry reads it again). Authorization (401, 403
// security_exception) and a missing index are fixed by an operator, not
// by the message: they pause too. Any other 4xx (mapper_parsing_exception,
// illegal_argument_exception, a request too large) refuses the request for
// what it holds.
func classifyOpenSearch(e *store.Error) errClass {
	switch {
	case e.Status == http.StatusTooManyRequests, e.Status >= 500, e.Status == http.StatusRequestTimeout,
		e.Status == http.StatusConflict, e.Type == "cluster_block_exception":
		return classTransient
	case e.Status == http.StatusUnauthorized, e.Type == "security_exception", e.Type == "index_not_found_exception":
		return classTransient
	case e.Status >= 400 && e.Status < 500:
		return classPermanent
	}
	return classTransient
}

// classifyKafka: the broker refuses a record for what it is (too large,
// invalid, a timestamp out of range) for good. Everything else a produce
// meets is the cluster's state (no leader, a leader moving, too few
// replicas, a timeout, a topic being created) or its setup (an ACL, a
// policy), which cures itself or is cured by an operator.
func classifyKafka(e sarama.KError) errClass {
	switch e {
	case sarama.ErrMessageSizeTooLarge, sarama.ErrMessageSetSizeTooLarge, sarama.ErrInvalidMessageSize,
		sarama.ErrInvalidRecord, sarama.ErrInvalidTimestamp:
		return classPermanent
	}
	return classTransient
}

// tooLarge reports whether err says a record is over a size limit (the
// broker's or the producer's).
func tooLarge(err error) bool {
	var ce sarama.ConfigurationError
	return errors.Is(err, sarama.ErrMessageSizeTooLarge) || errors.Is(err, sarama.ErrMessageSetSizeTooLarge) ||
		errors.As(err, &ce)
}
