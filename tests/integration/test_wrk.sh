#!/usr/bin/env bash
# test_wrk.sh — a short load smoke test with wrk (not a benchmark: see
# examples/bench for that). 100 keep-alive connections for 2 s each on
# examples/bench /plaintext and /json, testapp POST /echo (1000-byte bodies,
# from a small wrk Lua script written here) and testapp /sleep?ms=20.
# Asserts: requests were served, no socket errors, no non-2xx responses, the
# worker still answers afterwards and stops cleanly with no sanitizer findings.
set -u

BUILD=${CF_BUILD_DIR:?CF_BUILD_DIR must point at the build directory}
TMP=$(mktemp -d /tmp/cf-wrk-XXXXXX)
SERVER_PID=
FAILS=0

cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "test_wrk.sh: stopped by a signal"; exit 1' TERM INT

fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok   $*"; }

if ! command -v wrk >/dev/null; then
    echo "wrk is not installed"
    exit 1
fi

start() {
    local name=$1 exe=$2
    shift 2
    "$exe" --host 127.0.0.1 --port 0 --no-access-log "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    SERVER_PID=$!
    PORT=
    for _ in $(seq 500); do
        PORT=$(sed -n 's/.*serving on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/$name.err" | head -1)
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.01
    done
    fail "$name did not start: $(cat "$TMP/$name.err")"
    return 1
}

stop() {
    local name=$1 rc
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && { kill -KILL "$SERVER_PID"; fail "$name did not stop"; }
    wait "$SERVER_PID"
    rc=$?
    SERVER_PID=
    [ "$rc" -eq 0 ] && pass "$name exits with 0" || fail "$name exited with $rc"
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$TMP/$name.err"; then
        fail "$name: sanitizer findings:"
        cat "$TMP/$name.err"
    fi
}

# load NAME URL [wrk args...] — run wrk and check its summary.
load() {
    local name=$1 url=$2
    shift 2
    timeout 30 wrk -t2 -c100 -d2s --timeout 5s "$@" "$url" >"$TMP/wrk.txt" 2>&1
    local out reqs
    out=$(cat "$TMP/wrk.txt")
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$TMP/wrk.txt")
    echo "     $name: ${reqs:-?} requests; $(grep 'Requests/sec' "$TMP/wrk.txt" | tr -s ' ')"
    if [ -z "$reqs" ] || [ "$reqs" -lt 100 ]; then fail "$name: too few requests: $out"; return; fi
    if grep -q "Socket errors" "$TMP/wrk.txt"; then fail "$name: $(grep 'Socket errors' "$TMP/wrk.txt")"; return; fi
    if grep -q "Non-2xx" "$TMP/wrk.txt"; then fail "$name: $(grep 'Non-2xx' "$TMP/wrk.txt")"; return; fi
    pass "$name"
}

cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("0123456789", 100)
wrk.headers["Content-Type"] = "text/plain"
EOF

if start bench "$BUILD/examples/bench"; then
    load "bench /plaintext" "http://127.0.0.1:$PORT/plaintext"
    load "bench /json" "http://127.0.0.1:$PORT/json"
    [ "$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/plaintext")" == "Hello, World!" ] \
        && pass "bench answers after the load" || fail "bench after the load"
    stop bench
fi

if start testapp "$BUILD/tests/apps/testapp"; then
    load "testapp POST /echo 1000 bytes" "http://127.0.0.1:$PORT/echo" -s "$TMP/post.lua"
    load "testapp /sleep?ms=20" "http://127.0.0.1:$PORT/sleep?ms=20"
    [ "$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/hello")" == "Hello, World!" ] \
        && pass "testapp answers after the load" || fail "testapp after the load"
    stop testapp
fi

echo
[ "$FAILS" -eq 0 ] && echo "all passed" || echo "$FAILS failure(s)"
[ "$FAILS" -eq 0 ]
