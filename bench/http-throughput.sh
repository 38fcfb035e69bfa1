#!/usr/bin/env bash
# HTTP throughput: 200 tasks x self-consistency n = 32, one sample per request
# (6,400 requests) against `crucible sim-server` with a fixed 50 ms latency, at
# concurrency 64. Ideal wall time: 6,400 x 0.05 / 64 = 5.0 s.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/crucible
out=$(mktemp -d)
$bin sim-server bench/sim-server-50ms.yaml --port 0 --latency-ms 50 >"$out/server" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$out"' EXIT
until [ -s "$out/server" ]; do sleep 0.1; done
url=$(sed 's/listening on //' "$out/server")
sed -e "s#    provider: simulated#    provider: openai\n    base_url: $url\n    model: sim\n    seed: 0\n    n_per_request: 1\n    timeout: 30#" \
    -e '/distribution:/d' bench/sim-server-50ms.yaml >"$out/client.yaml"
/usr/bin/time -f "wall_s=%e user_s=%U sys_s=%S max_rss_kb=%M" \
    $bin run "$out/client.yaml" --db "$out/bench.db" --concurrency 64 --json >"$out/result.json" 2>"$out/time"
tail -1 "$out/time"
python3 - "$out" <<'PY'
import json, sqlite3, sys
d = sys.argv[1]
t = dict(kv.split("=") for kv in open(f"{d}/time").read().split("\n")[-2].split())
con = sqlite3.connect(f"{d}/bench.db")
requests, latency = con.execute("SELECT count(*), avg(latency_ms) FROM attempts").fetchone()
wall, cpu = float(t["wall_s"]), float(t["user_s"]) + float(t["sys_s"])
# The ideal again, at the latency each request really had (the server's timer
# rounds its 50 ms sleeps up): what is left over is crucible's own.
served = requests * latency / 1000 / 64
print(f"requests={requests} wall={wall:.2f}s ideal=5.00s ratio={wall/5.0:.3f} "
      f"mean_latency={latency:.2f}ms ideal_at_that_latency={served:.2f}s ratio_to_it={wall/served:.3f} "
      f"cpu={cpu:.2f}s cpu_per_request={1000*cpu/requests:.3f}ms peak_rss={int(t['max_rss_kb'])/1024:.0f}MB "
      f"status={json.load(open(f'{d}/result.json'))['status']}")
PY
