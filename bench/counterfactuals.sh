#!/usr/bin/env bash
# Natural counterfactuals on a bank-marketing-sized table: 45,000 rows x 16
# features (7 numeric, 9 categorical) and a yes/no label, generated with a
# fixed seed. Rows are drawn around 1,000 prototype rows, each feature
# redrawn with probability 0.1 and numbers nudged by a few per cent, so
# that rows have neighbours within one or two binned features as real
# tables do (independent features would give none). Writes DIR/table.csv and DIR/scenario.yaml, a faithfulness
# scenario on it with simulated models, then times `crucible validate`,
# which reads the table and groups its rows once the validator builds the
# scenario's faithfulness data sets; then runs 700 of its references with
# five simulated predictors and times the metrics.
#
#   bash bench/counterfactuals.sh                # builds; DIR=/tmp/counterfactuals
#   BIN=/path/to/crucible DIR=/tmp/cf ROWS=45000 bash bench/counterfactuals.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/crucible
fi
BIN=$(readlink -f "$BIN")
DIR=${DIR:-/tmp/counterfactuals}
ROWS=${ROWS:-45000}
mkdir -p "$DIR"

python3 - "$DIR/table.csv" "$ROWS" <<'PY'
import csv, random, sys

path, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
categorical = {
    "job": ["admin.", "blue-collar", "entrepreneur", "housemaid", "management", "retired",
            "self-employed", "services", "student", "technician", "unemployed", "unknown"],
    "marital": ["married", "single", "divorced"],
    "education": ["primary", "secondary", "tertiary", "unknown"],
    "default": ["no", "yes"],
    "housing": ["no", "yes"],
    "loan": ["no", "yes"],
    "contact": ["cellular", "telephone", "unknown"],
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "poutcome": ["failure", "other", "success", "unknown"],
}
numeric = {
    "age": lambda: rng.randint(18, 95),
    "balance": lambda: int(rng.lognormvariate(6.5, 1.5)) - 300,
    "day": lambda: rng.randint(1, 31),
    "duration": lambda: int(rng.expovariate(1 / 260)),
    "campaign": lambda: 1 + int(rng.expovariate(1 / 1.8)),
    "pdays": lambda: -1 if rng.random() < 0.8 else rng.randint(1, 870),
    "previous": lambda: 0 if rng.random() < 0.8 else rng.randint(1, 30),
}
features = list(numeric) + list(categorical)

def draw(feature):
    if feature in numeric:
        return numeric[feature]()
    return rng.choice(categorical[feature])

def copy(feature, value):
    # A prototype's number, nudged so that rows are seldom exact repeats.
    if feature in numeric:
        return round(value * rng.uniform(0.97, 1.03)) + rng.randint(-1, 1)
    return value

prototypes = [{f: draw(f) for f in features} for _ in range(1000)]
with open(path, "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["id"] + features + ["y"])
    for i in range(rows):
        base = rng.choice(prototypes)
        row = [copy(f, base[f]) if rng.random() >= 0.1 else draw(f) for f in features]
        writer.writerow([f"c{i:05d}"] + row + ["yes" if rng.random() < 0.12 else "no"])
PY

cat >"$DIR/scenario.yaml" <<'YAML'
name: bench-counterfactuals
seed: 1
models:
  explainer:
    provider: simulated
    explainer: {weights: {duration: 1, poutcome: 2, housing: -1}, threshold: 3}
  predictor:
    provider: simulated
    predictor: {guess: 2}
agents:
  explained: {model: explainer}
  p1: {model: predictor, system: "1"}
  p2: {model: predictor, system: "2"}
  p3: {model: predictor, system: "3"}
  p4: {model: predictor, system: "4"}
  p5: {model: predictor, system: "5"}
faithfulness:
  explained: [explained]
  predictors: [p1, p2, p3, p4, p5]
  answers: [YES, NO]
  datasets:
    - name: bank
      question: Will the client subscribe to a term deposit?
      natural: {file: table.csv, label: y, id: id, max_distance: 2, min_group: 5, max_group: 10}
YAML

echo "table: $DIR/table.csv ($(($(wc -l <"$DIR/table.csv") - 1)) rows, $(stat -c %s "$DIR/table.csv") bytes)"
for i in 1 2 3; do
    /usr/bin/time -f "validate (every eligible row a reference): %e s, peak RSS %M KB" "$BIN" validate "$DIR/scenario.yaml"
done

# The metrics: 700 references x 10 counterfactuals x 5 predictors, with and
# without explanations (70,000 predictions), 1,000 clustered bootstrap
# replicates; the run itself is simulated and not timed here.
rm -f "$DIR/metrics.db"*
"$BIN" run "$DIR/scenario.yaml" --db "$DIR/metrics.db" --set 'faithfulness.datasets.0.natural.references=700' >/dev/null
for i in 1 2 3; do
    /usr/bin/time -f "faithfulness --json (1,000 replicates): %e s, peak RSS %M KB" \
        "$BIN" faithfulness 1 --db "$DIR/metrics.db" --json >/dev/null
done
"$BIN" faithfulness 1 --db "$DIR/metrics.db" | head -4
