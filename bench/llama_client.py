"""A minimal concurrent client: posts the request bodies crucible recorded
for a run to a chat-completions URL, CONCURRENCY at a time, and prints the
samples per second. The yardstick for crucible's own overhead against a real
server (bench/llama-throughput.sh)."""

import json
import sqlite3
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

db, run_id, url, concurrency = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
bodies = [
    row[0]
    for row in sqlite3.connect(db).execute(
        "SELECT request FROM calls WHERE run_id = ? ORDER BY id", (run_id,)
    )
]


def post(body):
    req = urllib.request.Request(
        url + "/chat/completions",
        data=body.encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = json.load(resp)
        return len(body["choices"]), body["usage"]["completion_tokens"]


started = time.monotonic()
with ThreadPoolExecutor(concurrency) as pool:
    results = list(pool.map(post, bodies))
wall = time.monotonic() - started
samples = sum(r[0] for r in results)
tokens = sum(r[1] for r in results)
print(
    f"client:   samples={samples} output_tokens={tokens} wall={wall:.2f}s "
    f"samples_per_s={samples / wall:.2f}"
)
