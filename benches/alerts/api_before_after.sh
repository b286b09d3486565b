#!/usr/bin/env bash
# The API latency bench against the store/server code of an earlier commit, in one script:
# builds the current bench twice (at BASE and at the working tree), then runs them
# alternately. Usage: bash benches/alerts/api_before_after.sh [BASE] [RUNS]
# BASE defaults to 7449695 (before this work: one connection, rows sorted whole, JSON via
# Value trees); RUNS to 2 each. The bench is adapted to the old API with sed (per-incident
# writes instead of group commits, no reader-pool switch), so at BASE both of its store
# modes are the same single connection; only its `single-connection` table is compared.
set -euo pipefail
cd "$(dirname "$0")/../.."
base="${1:-7449695}"
runs="${2:-2}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git archive "$base" | tar -x -C "$work"
mkdir -p "$work/engine/server/benches"
sed -e '/set_read_pool/d' -e 's/lookout_alerts::GROUP_COMMIT_MAX/256/' \
  engine/server/benches/api_latency.rs > "$work/engine/server/benches/api_latency.rs"
cat >> "$work/engine/server/benches/api_latency.rs" <<'RS'

/// The old API has no group commit: store the revisions one by one.
trait RecordMany {
    fn record_incidents(
        &self,
        items: &[(&Incident, Option<&lookout_core::Frame>)],
    ) -> Vec<Result<lookout_alerts::ApplyOutcome, lookout_alerts::AlertsError>>;
}

impl RecordMany for Alerts {
    fn record_incidents(
        &self,
        items: &[(&Incident, Option<&lookout_core::Frame>)],
    ) -> Vec<Result<lookout_alerts::ApplyOutcome, lookout_alerts::AlertsError>> {
        items.iter().map(|(i, f)| self.record_incident(i, *f)).collect()
    }
}
RS
grep -q 'name = "api_latency"' "$work/engine/server/Cargo.toml" ||
  printf '\n[[bench]]\nname = "api_latency"\nharness = false\n' >> "$work/engine/server/Cargo.toml"
# The old tree builds in its own target directory (kept between runs of this script).
old_target="${LOOKOUT_OLD_TARGET:-$PWD/target/api-bench-old}"
echo "building the bench at $base ..."
(cd "$work" && CARGO_TARGET_DIR="$old_target" cargo bench --locked -p lookout-server --bench api_latency --no-run 2>&1 | tail -1)
echo "building the bench at the working tree ..."
cargo bench --locked -p lookout-server --bench api_latency --no-run 2>&1 | tail -1
old_bin="$(ls -t "$old_target"/release/deps/api_latency-* | grep -v '\.d$' | head -1)"
new_bin="$(ls -t target/release/deps/api_latency-* | grep -v '\.d$' | head -1)"
for i in $(seq 1 "$runs"); do
  for which in old new; do
    bin="$old_bin"; [ "$which" = new ] && bin="$new_bin"
    echo "== run $i: $which"
    "$bin" | sed -n '/== single-connection/,/^overall/p'
  done
done
