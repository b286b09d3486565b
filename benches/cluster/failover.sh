#!/usr/bin/env bash
# Cluster mode: failover and the hub's event rate, as one JSON line on stdout:
#
#   {"nodes":3,"cameras":3,"resume_s_max":..,"incidents_lost":0,"incidents_duplicated":0,
#    "hub_events_per_s":..,"hub_events_per_s_in_process":..,...}
#
# 1. Failover (engine/lookout/tests/cluster.rs, real processes): nats-server -js on
#    127.0.0.1, 3 edges + 1 hub on file cameras; one edge SIGKILLed (resume_s: until its
#    camera's events come from another edge), the hub SIGKILLed mid-stream and restarted
#    (incidents lost / duplicated against one fusion over the whole stream).
# 2. Hub rate (engine/cluster/examples/hub_rate.rs): the same synthetic load (CAMERAS towers,
#    MESSAGES events and clocks) through the same fusion in process, and over NATS (a
#    generator process fills the stream, the hub's consumer drains it). ROUNDS alternated
#    rounds; the medians are reported.
#
# Bounded (about 2 minutes once built), loopback only; every process it starts is stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
CAMERAS=${CAMERAS:-50}
MESSAGES=${MESSAGES:-20000}
ROUNDS=${ROUNDS:-3}

tmp=$(mktemp -d)
nats_pid=""
cleanup() {
  if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1. Failover.
LOOKOUT_CLUSTER_REPORT="$tmp/failover.json" \
  cargo test --locked -q -p lookout --test cluster edge_killed -- --nocapture >&2

# 2. Hub rate.
cargo build --locked -q -p lookout-cluster --example hub_rate >&2
bin=target/debug/examples/hub_rate
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="nats://127.0.0.1:$port"
for r in $(seq 1 "$ROUNDS"); do
  "$bin" inproc --cameras "$CAMERAS" --messages "$MESSAGES" >> "$tmp/inproc.jsonl"
  rm -rf "$tmp/js"
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$tmp/js" >/dev/null 2>&1 &
  nats_pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$bin" publish --cameras "$CAMERAS" --messages "$MESSAGES" --nats "$url" >> "$tmp/publish.jsonl"
  timeout 300 "$bin" hub --cameras "$CAMERAS" --messages "$MESSAGES" --nats "$url" >> "$tmp/hub.jsonl"
  kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true; nats_pid=""
done

python3 - "$tmp" "$CAMERAS" <<'EOF'
import json, statistics, sys
d = sys.argv[1]
out = json.load(open(f"{d}/failover.json"))
rows = lambda f: [json.loads(l) for l in open(f"{d}/{f}")]
inproc, hub, pub = rows("inproc.jsonl"), rows("hub.jsonl"), rows("publish.jsonl")
med = lambda rs: round(statistics.median(r["messages_per_s"] for r in rs))
out["hub_events_per_s"] = med(hub)
out["hub_events_per_s_in_process"] = med(inproc)
out["hub_over_in_process"] = round(out["hub_events_per_s"] / out["hub_events_per_s_in_process"], 3)
out["publish_per_s"] = med(pub)
out["load"] = {"cameras": int(sys.argv[2]), "messages": inproc[0]["messages"], "events": inproc[0]["events"], "revisions_in_process": inproc[0]["revisions"], "revisions_hub": hub[0]["revisions"]}
print(json.dumps(out, separators=(",", ":")))
EOF
