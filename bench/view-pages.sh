#!/usr/bin/env bash
# Viewer pages on the largest runs: time to first byte and full load of each
# page `crucible view` serves, on the 640,000-sample run (10,000 tasks x 64,
# bench/simulated-10k.yaml) and on a run of 40,000 graph runs judged inline
# (scenarios/failures.yaml at 10,000 tasks with the MAST judge on a simulated
# judge model). Median of 7 loads after one warm-up; peak RSS of each viewer.
#
#   bash bench/view-pages.sh               # builds, makes the databases if missing
#   BIN=/path/to/crucible DB=... GRAPH_DB=... bash bench/view-pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/crucible
fi
BIN=$(readlink -f "$BIN")
DB=$(readlink -f "${DB:-/tmp/view640.db}")
GRAPH_DB=$(readlink -f "${GRAPH_DB:-/tmp/viewgraph.db}")
ROUNDS=${ROUNDS:-7}
out=$(mktemp -d)
viewers=()
trap 'for p in "${viewers[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT

if [ ! -e "$DB" ]; then
    $BIN run bench/simulated-10k.yaml --db "$DB" >/dev/null
fi
if [ ! -e "$GRAPH_DB" ]; then
    mkdir -p "$out/graph/judges"
    cp judges/mast.yaml "$out/graph/judges/"
    python3 - "$out/graph" <<'PY'
import sys
src = open("scenarios/failures.yaml").read()
judge = "  judge:\n    provider: simulated\n    judge: {sensitivity: 0.8, specificity: 0.9}\n"
t = src.replace("\nagents:", judge + "\nagents:")
t = t.replace("synthetic: {count: 100}", "synthetic: {count: 10000}")
t = t.replace("\nstrategies:", "\njudges: [{file: judges/mast.yaml, model: judge}]\n\nstrategies:")
open(f"{sys.argv[1]}/graph.yaml", "w").write(t)
PY
    (cd "$out/graph" && $BIN run graph.yaml --db "$GRAPH_DB" >/dev/null)
fi
echo "db=$DB $(stat -c %s "$DB") bytes; graph_db=$GRAPH_DB $(stat -c %s "$GRAPH_DB") bytes"

# Start a read-only viewer on $1; sets `url` and `pid`.
start() {
    local log="$out/view-$(basename "$1")"
    $BIN view --db "$1" --port 0 --read-only >"$log" &
    pid=$!
    viewers+=("$pid")
    until [ -s "$log" ]; do sleep 0.05; done
    # crucible view: DB at http://127.0.0.1:PORT/
    url=$(sed -n '1s#^crucible view: .* at \(http://[^ ]*\)/$#\1#p' "$log")
}

# Load $url$1 once to warm up, then $ROUNDS times; print the medians.
measure() {
    local path=$1 t
    curl -s -o /dev/null "$url$path"
    for _ in $(seq "$ROUNDS"); do
        curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' "$url$path"
    done >"$out/times"
    python3 - "$path" "$out/times" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[2])]
codes = {r[0] for r in rows}
ttfb = statistics.median(float(r[1]) for r in rows) * 1000
total = statistics.median(float(r[2]) for r in rows) * 1000
size = int(rows[-1][3])
flag = "" if total <= 300 else "  > 300 ms"
print(f"{sys.argv[1]:<44} {'/'.join(sorted(codes)):>4} {ttfb:8.1f} {total:8.1f} {size/1024:8.0f}{flag}")
PY
}

# The number of pages of the sample list $1 at 50 a page, from its pager.
pages() {
    curl -s "$url$1" | sed -n 's#.* of [0-9]* · page 1 of \([0-9]*\).*#\1#p' | head -1
}

rss() {
    awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$1/status"
}

header() {
    printf '%-44s %4s %8s %8s %8s\n' page code ttfb_ms total_ms KiB
}

start "$DB"
big=$pid
echo "== $DB (viewer pid $big)"
header
last=$(pages /runs/1/samples)
wrong_last=$(pages '/runs/1/samples?correct=no')
for p in / /runs/1 /runs/1/tasks/0 /runs/1/tasks/5000 /runs/1/samples \
    "/runs/1/samples?page=$last" '/runs/1/samples?correct=no' \
    "/runs/1/samples?correct=no&page=$wrong_last" '/runs/1/samples?agent=solver' \
    '/runs/1/samples?task=5000' '/runs/1/samples?q=answer+is+7' '/runs/1/samples?q=no+such+text' \
    '/runs/1?correct=no' '/compare?a=1&b=1' /calls/1 /calls/5000; do
    measure "$p"
done
echo "peak RSS of the viewer: $(rss $big)"

start "$GRAPH_DB"
graph=$pid
echo "== $GRAPH_DB (viewer pid $graph)"
header
last=$(pages /runs/1/samples)
for p in / /runs/1 /runs/1/traces/0/0 /runs/1/traces/5000/2 /runs/1/traces/9999/3 \
    /runs/1/tasks/5000 /runs/1/samples "/runs/1/samples?page=$last" \
    '/runs/1?mode=FM-1.3&source=judged' '/compare?a=1&b=1' /calls/1; do
    measure "$p"
done
echo "peak RSS of the viewer: $(rss $graph)"
echo "peak RSS of the first viewer at the end: $(rss $big)"
