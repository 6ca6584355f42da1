#!/usr/bin/env bash
# Runs the API and the indexer in one process (`cdp run`), loads the demo
# dataset (10,000 generated customers; DEMO_CUSTOMERS changes it) through
# Kafka once the API is ready, prints the console's address, and keeps
# serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
addr=${CDP_HTTP_ADDR:-127.0.0.1:8080}

if curl -fsS "http://$addr/healthz" >/dev/null 2>&1; then
  echo "run: something already answers on $addr (set CDP_HTTP_ADDR to use another address)" >&2
  exit 1
fi
bin/cdp run &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 240); do
  curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "run: cdp exited; see its log above" >&2; exit 1; }
  sleep 0.5
done
# Keys for the demo: the key is the last line `cdp keys create` prints.
admin_key=$(bin/cdp keys create --name demo-admin --role admin | tail -n 1)
marketer_key=$(bin/cdp keys create --name demo-marketer --role marketer | tail -n 1)
CDP_API_KEY=$admin_key bin/cdp demo --api "http://$addr" --customers "${DEMO_CUSTOMERS:-10000}"
cat <<EOF

The console:  http://$addr/console/  (log in with a key below)
Admin key:    $admin_key
Marketer key: $marketer_key  (sees names, phones and emails masked)
The API:      http://$addr/v1/
  e.g. curl -H "Authorization: Bearer $marketer_key" -X POST http://$addr/v1/customers/search -d '{"filter":{"all":[]}}'
Ctrl-C stops.
EOF
wait $pid
