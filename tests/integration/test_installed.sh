#!/usr/bin/env bash
# test_installed.sh — Carafe as a user gets it: `cmake --install` into a
# temporary prefix, every example compiled and linked against the installed
# shared library through pkg-config, hello run from there and asked with curl.
# Also checks what libcarafe.so exports: the functions carafe.h declares, and
# nothing else (internal symbols are hidden and cannot clash with an app's).
set -u

BUILD=${CF_BUILD_DIR:?CF_BUILD_DIR must point at the build directory}
SRC=${CF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
TMP=$(mktemp -d /tmp/cf-installed-XXXXXX)
SERVER_PID=
FAILS=0
PASSES=0
cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok   $*"; PASSES=$((PASSES + 1)); }

PREFIX=$TMP/prefix
if ! cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1; then
    cat "$TMP/install.log"
    echo "FAIL cmake --install"
    exit 1
fi
LIB=$(find "$PREFIX" -name 'libcarafe.so.*.*' | head -1)
PC_DIR=$(dirname "$(find "$PREFIX" -name carafe.pc | head -1)")
[ -f "$LIB" ] && pass "installed $LIB" || fail "no libcarafe.so under $PREFIX"

# ---- exports -----------------------------------------------------------
# Functions carafe.h (and carafe/testing.h, which it includes) declares:
# prototypes, not macros or static inlines.
cat "$SRC/include/carafe.h" "$SRC/include/carafe/testing.h" |
    grep -oE '^[a-z_][a-z0-9_ *]*[ *]cf_[a-z0-9_]+\(' |
    grep -v '^static ' | grep -oE 'cf_[a-z0-9_]+\($' | tr -d '(' | sort -u >"$TMP/declared"
nm -D --defined-only "$LIB" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sort -u >"$TMP/exported"
extra=$(comm -13 "$TMP/declared" "$TMP/exported" | tr '\n' ' ')
missing=$(comm -23 "$TMP/declared" "$TMP/exported" | tr '\n' ' ')
n=$(wc -l <"$TMP/declared")
[ "$n" -gt 100 ] && pass "$n functions declared in carafe.h" || fail "only $n declarations found"
[ -z "$extra" ] && pass "nothing exported beyond carafe.h" || fail "exported but not public: $extra"
[ -z "$missing" ] && pass "every declared function exported" || fail "declared but not exported: $missing"

# ---- every example against the installed library ------------------------
flags=()
if grep -q '^CF_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    flags=(-fsanitize=address,undefined)
fi
pc=(env PKG_CONFIG_PATH="$PC_DIR" pkg-config --define-variable=prefix="$PREFIX")
if ! cflags=$("${pc[@]}" --cflags carafe) || ! libs=$("${pc[@]}" --libs carafe); then
    fail "pkg-config carafe"
fi
for dir in "$SRC"/examples/*/; do
    name=$(basename "$dir")
    # An example that calls another library itself names it in its
    # "Build: cc ... $(pkg-config --cflags --libs carafe MODULE...)" line.
    more=$(sed -n 's/.*Build: .*pkg-config --cflags --libs carafe \([a-z0-9 ]*\)).*/\1/p' "$dir"*.c | head -1)
    extra=""
    [ -n "$more" ] && extra=$(pkg-config --libs $more)
    # shellcheck disable=SC2086 # pkg-config output is a list of words
    if cc -std=gnu11 -Wall -Werror "${flags[@]}" -o "$TMP/$name" "$dir"*.c $cflags $libs $extra \
        2>"$TMP/$name.cc"; then
        pass "examples/$name builds against the installed library"
    else
        fail "examples/$name: $(head -5 "$TMP/$name.cc")"
    fi
done

# ---- hello from the prefix ------------------------------------------------
export LD_LIBRARY_PATH=$(dirname "$LIB")
if ldd "$TMP/hello" | grep -q "$PREFIX"; then
    pass "hello loads libcarafe.so from the prefix"
else
    fail "hello does not use the installed library: $(ldd "$TMP/hello" | grep carafe)"
fi
"$TMP/hello" --host 127.0.0.1 --port 0 --workers 1 >"$TMP/hello.out" 2>"$TMP/hello.err" &
SERVER_PID=$!
PORT=
for _ in $(seq 500); do
    PORT=$(sed -n 's/.*serving on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/hello.err" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.01
done
if [ -n "$PORT" ]; then
    body=$(curl -s --max-time 10 "http://127.0.0.1:$PORT/?name=prefix")
    [ "$body" == "Hello, prefix!" ] && pass "GET / answers from the installed build" ||
        fail "GET /: [$body]"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" && pass "hello stops cleanly" || fail "hello exit status $?"
    SERVER_PID=
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$TMP/hello.err"; then
        fail "sanitizer report: $(cat "$TMP/hello.err")"
    fi
else
    fail "hello did not start: $(cat "$TMP/hello.err")"
fi

echo "test_installed.sh: $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
