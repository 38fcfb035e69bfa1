#!/usr/bin/env bash
# Throughput against a real llama.cpp server (SmolLM2-135M, 4 slots):
# samples/s through crucible vs. the same request bodies (read back from
# crucible's trace) sent by a minimal concurrent client, at concurrency 4.
# Rounds alternate so that neither side gets a warmer server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/crucible
url=$(scripts/llama-server.sh url)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sed -e "s#base_url: .*#base_url: $url/v1\n    n_per_request: 1\n    seed: 11#" \
    -e "s#file: data/#file: $PWD/scenarios/data/#" \
    scenarios/llama-arithmetic.yaml >"$out/llama.yaml"
rounds=${ROUNDS:-3}
# Warm-up: the server's first requests load caches.
$bin run "$out/llama.yaml" --db "$out/warm.db" --concurrency 4 --json >/dev/null
for i in $(seq "$rounds"); do
    start=$(date +%s.%N)
    $bin run "$out/llama.yaml" --db "$out/r$i.db" --concurrency 4 --json >"$out/r$i.json"
    end=$(date +%s.%N)
    python3 - "$out/r$i.db" "$start" "$end" <<'PY'
import sqlite3, sys
db, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
samples, tokens = sqlite3.connect(db).execute(
    "SELECT count(*), sum(output_tokens) FROM samples").fetchone()
wall = end - start
print(f"crucible: samples={samples} output_tokens={tokens} wall={wall:.2f}s "
      f"samples_per_s={samples / wall:.2f}")
PY
    python3 bench/llama_client.py "$out/r$i.db" 1 "$url/v1" 4
done
