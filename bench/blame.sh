#!/usr/bin/env bash
# Counterfactual attribution at scale: scenarios/blame-sim.yaml (4 simulated
# agents in a round-robin chat) with TASKS tasks, so that about 200 graph
# runs fail at 10 turns; then `crucible blame` with every turn re-sampled,
# R = 16 replays per coalition of agents (every coalition: 4 agents) and 16
# paired orders of the turns. Timed at 5, 10, 20 and 40 turns (a fresh run
# each), and the growth of the time per failed run with turns fitted as a
# power law (least squares in log–log).
#
#   bash bench/blame.sh                     # builds; DIR=/tmp/blame-bench
#   BIN=/path/to/crucible TASKS=540 bash bench/blame.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/crucible
fi
BIN=$(readlink -f "$BIN")
DIR=${DIR:-/tmp/blame-bench}
TASKS=${TASKS:-540}
mkdir -p "$DIR"
results="$DIR/results.tsv"
: >"$results"
for turns in 5 10 20 40; do
    db="$DIR/blame-$turns.db"
    rm -f "$db" "$db-wal" "$db-shm"
    "$BIN" run scenarios/blame-sim.yaml --db "$db" --json \
        --set "dataset.synthetic.count=$TASKS" \
        --set "graph.nodes.room.chat.until.max_messages=$turns" >/dev/null
    start=$(date +%s.%N)
    "$BIN" blame 1 --db "$db" --replays 16 --samples 16 --json >"$DIR/blame-$turns.json"
    end=$(date +%s.%N)
    python3 - "$DIR/blame-$turns.json" "$turns" "$start" "$end" >>"$results" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
turns, wall = int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3])
traces, replays = len(v["attributions"]), v["replays"]["total"]
e = next(e for e in v["evaluation"] if e["method"] == "counterfactual")
print(f"{turns}\t{traces}\t{replays}\t{wall:.2f}\t{replays / wall:.0f}\t{e['agent_accuracy']:.3f}\t{e['step_accuracy']:.3f}")
PY
done
python3 - "$results" <<'PY'
import math, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
print("turns  failed  replays  wall s  replays/s  agent acc  step acc  s per failed run")
xs, ys = [], []
for t, n, r, w, rate, agent, step in rows:
    per = float(w) / int(n)
    xs.append(math.log(int(t))); ys.append(math.log(per))
    print(f"{t:>5}  {n:>6}  {r:>7}  {w:>6}  {rate:>9}  {agent:>9}  {step:>8}  {per:.4f}")
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
print(f"time per failed run grows as turns^{slope:.2f}")
PY
