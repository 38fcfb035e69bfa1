"""Writes separation.jsonl, the tasks of scenarios/separation-sim.yaml:
20 tasks at each of 10 gaps Δ (evenly spaced in ln Δ) of two families of
answer distributions, each task answered by its own distribution.

  two_way: the correct answer "A" at (1 + Δ)/2, one wrong answer at (1 - Δ)/2
  spread:  "A" at Δ + ε, ⌈(1 - Δ - ε)/ε⌉ wrong answers sharing the rest (ε = 0.01)

Run from this folder: python3 separation.py
"""
import json
import math


def grid(a, b, k):
    return [math.exp(math.log(a) + (math.log(b) - math.log(a)) * i / (k - 1)) for i in range(k)]


out = []
for d in grid(0.08, 0.4, 10):
    d = round(d, 4)
    for t in range(20):
        out.append({"id": f"two_way-{d}-{t}", "question": f"two-way task, gap {d}", "answer": "A",
                    "family": "two_way", "delta": d,
                    "distribution": {"A": (1 + d) / 2, "B": (1 - d) / 2}})
eps = 0.01
for d in grid(0.05, 0.4, 10):
    d = round(d, 4)
    top = d + eps
    wrong = math.ceil((1 - top) / eps)
    for t in range(20):
        dist = {"A": top}
        for w in range(wrong):
            dist[f"W{w}"] = (1 - top) / wrong
        out.append({"id": f"spread-{d}-{t}", "question": f"spread task, gap {d}", "answer": "A",
                    "family": "spread", "delta": d, "epsilon": eps, "distribution": dist})
with open("separation.jsonl", "w") as f:
    for o in out:
        f.write(json.dumps(o) + "\n")
