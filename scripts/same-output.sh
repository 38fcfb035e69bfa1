#!/usr/bin/env bash
# Check that two crucible binaries give byte-identical output on every
# shipped scenario (proof that a refactor changed no behaviour).
#
#   scripts/same-output.sh OLD_BINARY NEW_BINARY
#
# Per scenarios/*.yaml, with each binary in the same fresh scratch directory
# (so paths in the output match without rewriting), it records stdout, stderr
# and exit status of: validate, run --json (60 s timeout: the llama scenario
# only gets "connection refused"), analyze --json, export --format jsonl|csv,
# show, show --json, runs, runs --json, graph, graph --dot, and for graph
# scenarios show --transcript of the first task. No shipped scenario names a
# `crucible sim-server`, so none is started.
#
# Normalized before comparing (nothing else; all else must match byte for byte):
#   "started_at", "finished_at"  wall-clock timestamps (runs --json)  -> <T>
#   seconds column               run duration (runs table)            -> <S>
#   "latency_ms" / latency_ms    measured call latency (export jsonl, csv) -> <MS>
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
cd "$(dirname "$0")/.."
unset CRUCIBLE_DB
base=$(mktemp -d) && trap 'rm -rf "$base"' EXIT
(exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null &&
    echo "warning: something listens on 127.0.0.1:8080; llama-* scenarios will not be reproducible" >&2

# norm FILE: rewrite the fields listed above in place.
norm() {
    python3 - "$1" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8", errors="surrogateescape").read()
text = re.sub(r'"(started_at|finished_at)":-?[0-9.eE+-]+', r'"\1":<T>', text)
text = re.sub(r'"latency_ms":-?[0-9.eE+-]+', '"latency_ms":<MS>', text)
if path.endswith("runs.out"):   # table: seconds is the last cell of a row
    text = re.sub(r'┆ *[0-9.]+ *│$', '┆ <S> │', text, flags=re.M)
if path.endswith("csv.out"):    # CSV: the latency_ms column, other bytes untouched
    out, col, row, i = [], None, 0, 0
    for m in re.finditer(r'("(?:[^"]|"")*"|[^,\n]*)(,|\n|$)', text):
        field, sep = m.groups()
        if row == 0 and field == "latency_ms":
            col = i
        elif row > 0 and i == col:
            field = "<MS>"
        out.append(field + sep)
        i, row = (i + 1, row) if sep == "," else (0, row + 1)
        if m.end() == len(text):
            break
    text = "".join(out)
open(path, "w", encoding="utf-8", errors="surrogateescape").write(text)
EOF
}

# capture DIR NAME CMD...: stdout, stderr and exit status of CMD in DIR/NAME.out
capture() {
    local dir=$1 name=$2; shift 2
    timeout 60 "$@" >"$dir/$name.stdout" 2>"$dir/$name.stderr"
    local rc=$?
    { cat "$dir/$name.stdout"; echo "--- stderr"; cat "$dir/$name.stderr"; echo "--- exit $rc"; } >"$dir/$name.out"
    rm "$dir/$name.stdout" "$dir/$name.stderr"
    return $rc
}

# outputs BINARY DIR FILE: every command's output for one scenario into DIR
outputs() {
    local bin=$1 dir=$2 file=$3 scratch=$base/scratch db
    rm -rf "$scratch" && mkdir -p "$scratch" "$dir"
    db=$scratch/crucible.db
    capture "$dir" validate "$bin" validate "$file"
    capture "$dir" run "$bin" run "$file" --db "$db" --json
    [ $? -eq 124 ] && return 124
    # A fresh database, so the run is run 1.
    capture "$dir" analyze "$bin" analyze 1 --db "$db" --json
    capture "$dir" export-jsonl "$bin" export 1 --db "$db" --format jsonl
    capture "$dir" export-csv "$bin" export 1 --db "$db" --format csv
    capture "$dir" show "$bin" show 1 --db "$db"
    capture "$dir" show-json "$bin" show 1 --db "$db" --json
    capture "$dir" runs "$bin" runs --db "$db"
    capture "$dir" runs-json "$bin" runs --db "$db" --json
    capture "$dir" graph "$bin" graph "$file"
    capture "$dir" graph-dot "$bin" graph "$file" --dot
    if grep -q '^graph:' "$file"; then
        local task
        task=$(grep -o -m1 '"task_id":"[^"]*"' "$dir/export-jsonl.out" | cut -d'"' -f4)
        capture "$dir" transcript "$bin" show 1 --db "$db" --transcript "$task"
    fi
    for f in "$dir"/*.out; do norm "$f"; done
    return 0
}

start=$SECONDS failed=0
for file in scenarios/*.yaml; do
    name=$(basename "$file" .yaml) t0=$SECONDS
    if ! outputs "$old" "$base/old/$name" "$file"; then
        echo "SKIP $name: run took > 60 s with $old"; continue
    fi
    outputs "$new" "$base/new/$name" "$file"
    if d=$(diff -ru "$base/old/$name" "$base/new/$name"); then
        echo "OK $name ($((SECONDS - t0)) s)"
    else
        echo "$d" | sed "s|$base/||g"; echo "MISMATCH $name"; failed=1
    fi
done
echo "done in $((SECONDS - start)) s"
exit $failed
