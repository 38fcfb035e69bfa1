#!/usr/bin/env bash
# A real headless Chromium and its WebDriver server, for the tests of `crucible view`.
#
#   scripts/browser.sh install   apt-get install chromium and chromium-driver if either is missing
#   scripts/browser.sh paths     install if needed, then print the two programs the tests start:
#                                  chromium=/usr/bin/chromium
#                                  chromedriver=/usr/bin/chromedriver
#
# Both come from Debian's packages, which keep chromedriver at the browser's
# exact version (a driver of another version refuses the browser). Set
# CRUCIBLE_CHROMIUM and CRUCIBLE_CHROMEDRIVER to use a pair you already have.
set -euo pipefail

cache="${CRUCIBLE_CACHE:-$HOME/.cache/crucible}"
mkdir -p "$cache"

chromium_path() { [ -n "${CRUCIBLE_CHROMIUM:-}" ] && echo "$CRUCIBLE_CHROMIUM" || command -v chromium; }
chromedriver_path() { [ -n "${CRUCIBLE_CHROMEDRIVER:-}" ] && echo "$CRUCIBLE_CHROMEDRIVER" || command -v chromedriver; }
present() { chromium_path >/dev/null && chromedriver_path >/dev/null; }

install() {
    if present; then
        return
    fi
    # Tests run in parallel and each may ask: one installs, the others wait for it.
    exec 9>"$cache/browser-install.lock"
    flock -w 1800 9
    if present; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "crucible: chromium and chromedriver are missing; install them as root:" >&2
        echo "  apt-get install chromium chromium-driver   (or: sudo bash $0 install)" >&2
        exit 1
    fi
    echo "crucible: installing chromium and chromium-driver with apt-get (first time only)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # dpkg's progress goes to a log, shown only when the install fails.
    local log="$cache/browser-install.log"
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
        echo "crucible: apt-get failed; the end of $log:" >&2
        tail -20 "$log" >&2
        exit 1
    fi
    present || { echo "crucible: apt-get installed no chromium/chromedriver on PATH" >&2; exit 1; }
}

case "${1:-paths}" in
    install) install ;;
    paths) install; echo "chromium=$(chromium_path)"; echo "chromedriver=$(chromedriver_path)" ;;
    *) echo "usage: $0 install|paths" >&2; exit 2 ;;
esac
