"""Writes experts.jsonl, the tasks of scenarios/experts-sim.yaml: 100 tasks
of each of three kinds (the `type` field, which the simulated experts'
`skills` read and the prompts never show), each with a numeric answer.

Run from this folder: python3 experts.py
"""
import json

with open("experts.jsonl", "w") as f:
    for k, kind in enumerate(["algebra", "geometry", "counting"]):
        for i in range(100):
            # Questions differ from task to task and never name the kind.
            f.write(json.dumps({"id": f"{kind}-{i:03}", "question": f"Problem {100 * k + i}",
                                "answer": 10 + i, "type": kind}) + "\n")
