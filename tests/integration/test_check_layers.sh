#!/usr/bin/env bash
# test_check_layers.sh — scripts/check-layers on small fake trees compiled
# here: a clean tree passes; an upward include, an upward call, a cycle
# between folders and an over-long file each fail, named in the output.
set -euo pipefail
SRC=${CF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
CHECK="$SRC/scripts/check-layers"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; fails=$((fails + 1)); }

# tree NAME: src/ files from the here-doc lines "path|code", then objects.
tree() {
    local dir="$TMP/$1"
    mkdir -p "$dir"
    while IFS='|' read -r path code; do
        [ -n "$path" ] || continue
        mkdir -p "$dir/$(dirname "$path")"
        printf '%b\n' "$code" >"$dir/$path"
    done
    (cd "$dir/src" && for f in */*.c; do
        mkdir -p "$dir/build/CMakeFiles/carafe_objs.dir/src/$(dirname "$f")"
        cc -c -I. "$f" -o "$dir/build/CMakeFiles/carafe_objs.dir/src/$f.o"
    done)
}
run() { "$CHECK" "$TMP/$1/build" --src "$TMP/$1/src" >"$TMP/$1.out" 2>&1; }

tree clean <<'T'
src/core/a.h|int core_fn(void);
src/core/a.c|#include "core/a.h"\nint core_fn(void) { return 1; }
src/app/b.c|#include "core/a.h"\nint app_fn(void) { return core_fn(); }
T
run clean && pass "a clean tree passes" || { fail "clean tree: $(cat "$TMP/clean.out")"; }

tree inc <<'T'
src/app/b.h|int app_fn(void);
src/app/b.c|int app_fn(void) { return 2; }
src/core/a.c|#include "app/b.h"\nint core_fn(void) { return 1; }
T
if run inc; then fail "an upward include passed"; else
    grep -q 'src/core/a.c:1: includes "app/b.h"' "$TMP/inc.out" && pass "upward include named" ||
        fail "upward include: $(cat "$TMP/inc.out")"
fi

tree call <<'T'
src/core/a.c|int server_fn(void);\nint core_fn(void) { return server_fn(); }
src/server/s.c|int server_fn(void) { return 3; }
T
if run call; then fail "an upward call passed"; else
    grep -q 'src/core/a.c:1: uses server_fn, defined in src/server/s.c' "$TMP/call.out" &&
        pass "upward call named" || fail "upward call: $(cat "$TMP/call.out")"
fi
grep -q 'cycle' "$TMP/call.out" && fail "a one-way edge reported as a cycle" || pass "no false cycle"

tree cycle <<'T'
src/http/h.c|int app_fn(void);\nint http_fn(void) { return app_fn(); }
src/app/b.c|int http_fn(void);\nint app_fn(void) { return 0; }\nint app_two(void) { return http_fn(); }
T
if run cycle; then fail "a cycle passed"; else
    grep -q 'cycle: app -> http -> app' "$TMP/cycle.out" && pass "cycle reported" ||
        fail "cycle: $(cat "$TMP/cycle.out")"
fi

mkdir -p "$TMP/long/src/core"
{ for i in $(seq 1 801); do echo "int v$i;"; done; } >"$TMP/long/src/core/big.c"
(cd "$TMP/long/src" && mkdir -p ../build/CMakeFiles/carafe_objs.dir/src/core &&
    cc -c core/big.c -o ../build/CMakeFiles/carafe_objs.dir/src/core/big.c.o)
if run long; then fail "an 801-line file passed"; else
    grep -q 'src/core/big.c: 801 lines' "$TMP/long.out" && pass "long file named" ||
        fail "long file: $(cat "$TMP/long.out")"
fi

mkdir -p "$TMP/empty/src/core"
run empty && fail "no objects passed" || pass "no objects fails"

[ "$fails" -eq 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
