#!/usr/bin/env bash
# test_curl.sh — curl as the client: GET, POST -d, --http1.0, -I (HEAD), a
# chunked upload from a file, and the examples (hello, echo, bench) on their
# documented endpoints. Every server is started on a free port (--port 0) and
# stopped by the EXIT trap; its stderr is checked for sanitizer findings.
set -u

BUILD=${CF_BUILD_DIR:?CF_BUILD_DIR must point at the build directory}
TMP=$(mktemp -d /tmp/cf-curl-XXXXXX)
PIDS=()
FAILS=0
PASSES=0

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "test_curl.sh: stopped by a signal"; exit 1' TERM INT
# The whole script must end well within CTest's limit: a watchdog (its own
# sleep is killed with it, and it holds none of CTest's pipes).
(
    trap 'kill "$SP" 2>/dev/null; exit 0' TERM
    sleep 100 &
    SP=$!
    wait "$SP" && kill -TERM $$
) >/dev/null 2>&1 &
WATCHDOG=$!
PIDS+=("$WATCHDOG")

fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok   $*"; PASSES=$((PASSES + 1)); }

# expect NAME GOT WANT
expect() {
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: got [$2], want [$3]"; fi
}
# expect_match NAME TEXT REGEX
expect_match() {
    if [[ "$2" =~ $3 ]]; then pass "$1"; else fail "$1: [$2] does not match /$3/"; fi
}

# start NAME EXE [ARGS...] — sets PORT and SERVER_PID, stderr in $TMP/NAME.err
start() {
    local name=$1 exe=$2
    shift 2
    if [ ! -x "$exe" ]; then
        fail "$name: $exe is not built"
        return 1
    fi
    "$exe" --host 127.0.0.1 --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
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

# stop NAME — SIGTERM, expect exit 0 within 10 s, no sanitizer findings
stop() {
    local name=$1 pid=$SERVER_PID rc
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        fail "$name did not stop on SIGTERM"
    fi
    wait "$pid"
    rc=$?
    expect "$name exits with 0" "$rc" 0
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$TMP/$name.err"; then
        fail "$name: sanitizer findings:"
        cat "$TMP/$name.err"
    else
        pass "$name: no sanitizer findings"
    fi
}

C=(curl -sS --max-time 10)

# ---- testapp ------------------------------------------------------------------
if start testapp "$BUILD/tests/apps/testapp"; then
    B="http://127.0.0.1:$PORT"
    expect "GET /hello" "$("${C[@]}" "$B/hello")" "Hello, World!"
    expect "GET /hello status" "$("${C[@]}" -o /dev/null -w '%{http_code}' "$B/hello")" 200
    expect "POST -d form" "$("${C[@]}" -d 'name=curl+user&x=%26' "$B/form")" '{"name":"curl user","x":"&"}'
    expect "POST -d to /echo keeps Content-Type" \
        "$("${C[@]}" -d 'a=1' -o /dev/null -w '%{content_type}' "$B/echo")" "application/x-www-form-urlencoded"
    expect "POST JSON" "$("${C[@]}" -H 'Content-Type: application/json' -d '{"k":[1,2]}' "$B/json")" '{"k":[1,2]}'
    expect "--http1.0" "$("${C[@]}" --http1.0 -w ' %{http_version}' "$B/hello")" "Hello, World! 1.1"
    head=$("${C[@]}" -I "$B/hello" | tr -d '\r')
    expect_match "-I status" "$head" "^HTTP/1.1 200 OK"
    expect_match "-I Content-Length" "$head" $'\n''Content-Length: 13'
    expect "-I has no body" "$("${C[@]}" -I -o /dev/null -w '%{size_download}' "$B/hello")" 0
    head -c 300000 /dev/urandom >"$TMP/upload.bin"
    "${C[@]}" -H "Transfer-Encoding: chunked" -H "Content-Type: application/x-up" \
        --data-binary @"$TMP/upload.bin" -o "$TMP/echoed.bin" "$B/echo"
    if cmp -s "$TMP/upload.bin" "$TMP/echoed.bin"; then pass "chunked upload echoed"; else
        fail "chunked upload differs ($(stat -c %s "$TMP/echoed.bin") bytes back)"; fi
    trace=$("${C[@]}" -v -H "Transfer-Encoding: chunked" --data-binary @"$TMP/upload.bin" \
        -o /dev/null "$B/echo" 2>&1 | tr -d '\r')
    expect_match "curl really sent chunked" "$trace" "> Transfer-Encoding: chunked"
    expect "chunked upload over the route limit" \
        "$("${C[@]}" -H "Transfer-Encoding: chunked" --data-binary @"$TMP/upload.bin" \
            -o /dev/null -w '%{http_code}' "$B/small-body")" 413
    expect "redirect -L" "$("${C[@]}" -L "$B/redirect")" "Hello, World!"
    expect "404" "$("${C[@]}" -o /dev/null -w '%{http_code}' "$B/missing")" 404
    expect "keep-alive: two URLs, one connection" \
        "$("${C[@]}" -o /dev/null -o /dev/null -w '%{num_connects}' "$B/hello" "$B/user/1")" "10"
    stop testapp
fi

# ---- examples/hello --------------------------------------------------------------
if start hello "$BUILD/examples/hello"; then
    expect "hello GET /?name=x" "$("${C[@]}" "http://127.0.0.1:$PORT/?name=x")" "Hello, x!"
    expect "hello GET /" "$("${C[@]}" "http://127.0.0.1:$PORT/")" "Hello, World!"
    stop hello
fi

# ---- examples/echo ---------------------------------------------------------------
if start echo "$BUILD/examples/echo"; then
    B="http://127.0.0.1:$PORT"
    expect "echo POST arbitrary path" "$("${C[@]}" --data-binary 'some body' "$B/any/where/x.y?q=1")" "some body"
    expect "echo PUT" "$("${C[@]}" -X PUT --data-binary 'put it' "$B/put")" "put it"
    expect "echo Content-Type" \
        "$("${C[@]}" -H 'Content-Type: text/x-mine' -d 'z' -o /dev/null -w '%{content_type}' "$B/ct")" "text/x-mine"
    "${C[@]}" -H "Transfer-Encoding: chunked" --data-binary @"$TMP/upload.bin" -o "$TMP/echoed2.bin" "$B/up"
    if cmp -s "$TMP/upload.bin" "$TMP/echoed2.bin"; then pass "echo chunked upload"; else fail "echo chunked upload differs"; fi
    stop echo
fi

# ---- examples/bench --------------------------------------------------------------
if start bench "$BUILD/examples/bench"; then
    B="http://127.0.0.1:$PORT"
    expect "bench /plaintext" "$("${C[@]}" "$B/plaintext")" "Hello, World!"
    expect "bench /json" "$("${C[@]}" "$B/json")" '{"message":"Hello, World!"}'
    expect_match "bench /json type" "$("${C[@]}" -o /dev/null -w '%{content_type}' "$B/json")" "^application/json"
    expect "bench /sleep?ms=50" "$("${C[@]}" "$B/sleep?ms=50")" "slept 50"
    t=$("${C[@]}" -o /dev/null -w '%{time_total}' "$B/sleep?ms=200")
    # 200 ms of the loop's millisecond clock: at least 197 real ms (cf_sleep)
    expect_match "bench /sleep?ms=200 takes >= 0.197 s ($t)" "$t" "^(0\.(19[7-9]|2|3|4|5)|[1-9])"
    expect "bench /sleep bad ms" "$("${C[@]}" -o /dev/null -w '%{http_code}' "$B/sleep?ms=abc")" 400
    # Without UPSTREAM in its environment (test_fetch.py runs it with one).
    expect "bench /fanout without UPSTREAM" "$("${C[@]}" -o /dev/null -w '%{http_code}' "$B/fanout")" 503
    stop bench
fi

kill "$WATCHDOG" 2>/dev/null
echo
echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
