#!/usr/bin/env bash
# test_installed.sh — Carafe as a user gets it: `cmake --install` into a
# temporary prefix, then, against what is installed there:
#   - every example compiled as ISO C11 (-Wpedantic, warnings are errors) and
#     linked with the shared library through pkg-config (carafe.pc), and
#     linked statically as the README says (carafe-static.pc), needing no
#     libcarafe.so then;
#   - the complete programs of README.md and docs/guide.md, the same way;
#   - hello, both ways, run from there and asked with curl;
#   - a C++ file including carafe.h stopped with a clear message (C only).
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

# ---- compiling against the prefix ----------------------------------------
# The header is ISO C11: apps may build with -std=c11 -Wpedantic -Werror.
strict=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
if grep -q '^CF_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    strict+=(-fsanitize=address,undefined)
fi
pc=(env PKG_CONFIG_PATH="$PC_DIR" pkg-config --define-variable=prefix="$PREFIX")

# link_with "MODULE..." OUT SOURCE...: compile and link through `pkg-config
# --cflags --libs MODULE...`; the compiler's messages go to OUT.cc.
link_with() {
    local modules=$1 out=$2 flags
    shift 2
    # shellcheck disable=SC2086 # a list of module names
    flags=$("${pc[@]}" --cflags --libs $modules 2>"$out.cc") || return 1
    # shellcheck disable=SC2086 # pkg-config output is a list of words
    cc "${strict[@]}" -o "$out" "$@" $flags 2>"$out.cc"
}

# Every example, linked both ways: with libcarafe.so, and statically as the
# README says (libcarafe.a in, the libraries it uses as shared ones).
for dir in "$SRC"/examples/*/; do
    name=$(basename "$dir")
    # An example that calls another library itself names it in its
    # "Build: cc ... $(pkg-config --cflags --libs carafe MODULE...)" line.
    more=$(sed -n 's/.*Build: .*pkg-config --cflags --libs carafe \([a-z0-9 ]*\)).*/\1/p' "$dir"*.c | head -1)
    if link_with "carafe $more" "$TMP/$name" "$dir"*.c; then
        pass "examples/$name builds as ISO C11 against the installed library"
    else
        fail "examples/$name: $(head -5 "$TMP/$name.cc")"
    fi
    if ! link_with "carafe-static $more" "$TMP/$name-static" "$dir"*.c; then
        fail "examples/$name, static: $(grep -m5 -E 'error|undefined|No package' "$TMP/$name-static.cc")"
    elif ldd "$TMP/$name-static" | grep -q libcarafe; then
        fail "examples/$name, static, still loads $(ldd "$TMP/$name-static" | grep carafe)"
    else
        pass "examples/$name links statically (carafe-static.pc), without libcarafe.so"
    fi
done

# The docs' complete programs: the ```c blocks that have an `int main`,
# which a reader pastes into a file and builds as they are. Blocks without
# one are fragments (a handler, a few calls) and are left out.
for doc in README.md docs/guide.md; do
    found=0
    awk -v out="$TMP/doc-$(basename "$doc" .md)" '
        /^```c$/ { inside = 1; file = out "-" NR ".c"; next }
        inside && /^```/ { inside = 0; close(file); next }
        inside { print > file }' "$SRC/$doc"
    for block in "$TMP"/doc-*.c; do
        [ -e "$block" ] || continue
        line=${block%.c} line=${line##*-}
        if grep -q 'int main' "$block"; then
            found=$((found + 1))
            if link_with carafe "${block%.c}" "$block"; then
                pass "$doc:$line, a complete program, builds as ISO C11"
            else
                fail "$doc:$line: $(head -5 "${block%.c}.cc")"
            fi
        fi
        rm -f "$block"
    done
    [ "$found" -gt 0 ] || fail "$doc: no complete program (\`\`\`c block with int main) found"
done

for module in carafe carafe-static; do
    "${pc[@]}" --cflags "$module" 2>/dev/null | grep -q -- -fstack-clash-protection &&
        pass "$module.pc gives apps -fstack-clash-protection" ||
        fail "$module.pc: no -fstack-clash-protection in Cflags"
done

# C++: the header's macros use _Generic and compound literals, which C++
# lacks, so it says so instead of failing somewhere inside.
if command -v g++ >/dev/null; then
    printf '#include <carafe.h>\nint main() { return 0; }\n' >"$TMP/app.cpp"
    # shellcheck disable=SC2046 # pkg-config output is a list of words
    if g++ -std=c++17 -fsyntax-only "$TMP/app.cpp" $("${pc[@]}" --cflags carafe) \
        >"$TMP/cpp.out" 2>&1; then
        fail "carafe.h compiles as C++, though its macros are C only"
    elif grep -q 'carafe.h is C only' "$TMP/cpp.out"; then
        pass "g++ is told that carafe.h is C only"
    else
        fail "g++ on carafe.h: $(head -3 "$TMP/cpp.out")"
    fi
fi

# ---- hello from the prefix ------------------------------------------------
LIBDIR=$(dirname "$LIB")
if LD_LIBRARY_PATH=$LIBDIR ldd "$TMP/hello" | grep -q "$PREFIX"; then
    pass "hello loads libcarafe.so from the prefix"
else
    fail "hello does not use the installed library: $(LD_LIBRARY_PATH=$LIBDIR ldd "$TMP/hello" | grep carafe)"
fi

# serve LABEL COMMAND...: start a hello, ask it with curl, stop it.
serve() {
    local label=$1 port=
    shift
    "$@" --host 127.0.0.1 --port 0 --workers 1 >"$TMP/$label.out" 2>"$TMP/$label.err" &
    SERVER_PID=$!
    for _ in $(seq 500); do
        port=$(sed -n 's/.*serving on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/$label.err" | head -1)
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.01
    done
    if [ -z "$port" ]; then
        fail "$label did not start: $(cat "$TMP/$label.err")"
        return
    fi
    body=$(curl -s --max-time 10 "http://127.0.0.1:$port/?name=prefix")
    [ "$body" == "Hello, prefix!" ] && pass "$label: GET / answers" || fail "$label: GET /: [$body]"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" && pass "$label stops cleanly" || fail "$label exit status $?"
    SERVER_PID=
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$TMP/$label.err"; then
        fail "$label: sanitizer report: $(cat "$TMP/$label.err")"
    fi
}
[ -x "$TMP/hello" ] && serve hello env LD_LIBRARY_PATH="$LIBDIR" "$TMP/hello"
[ -x "$TMP/hello-static" ] && serve hello-static "$TMP/hello-static"

echo "test_installed.sh: $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
