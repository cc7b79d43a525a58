#!/usr/bin/env bash
# test_install_deps.sh — building and installing Carafe asks for no more than
# building needs: scripts/install-deps --build lists every package the build
# uses (the pkg-config modules and headers CMakeLists.txt requires) and no
# test tool; make build / run / install use that list, configure without the
# tests and with warnings non-fatal; the test targets take the full list and
# make warnings errors; a plain cmake configure leaves warnings non-fatal.
# Reads the lists and dry-runs make (make -n): installs nothing.
set -u

SRC=${CF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
FAILS=0
PASSES=0
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok   $*"; PASSES=$((PASSES + 1)); }

build=$("$SRC/scripts/install-deps" --build --list | sort)
full=$("$SRC/scripts/install-deps" --test --list | sort)
[ -n "$build" ] && pass "install-deps --build --list: $(echo $build)" || fail "no build list"
# The default is the full list (what test messages tell people to run).
[ "$("$SRC/scripts/install-deps" --list | sort)" == "$full" ] &&
    pass "install-deps without --build lists everything" || fail "the default list is not --test's"
extra=$(comm -23 <(echo "$build") <(echo "$full") | tr '\n' ' ')
[ -z "$extra" ] && pass "--test lists the build packages too" || fail "only in --build: $extra"

# Servers and tools that only the tests, fuzzing and benchmarks use.
before=$FAILS
for p in postgresql redis-server nginx clang libclang-rt-14-dev valgrind wrk curl \
    python3 python3-requests python3-websockets openssl chromium chromium-driver \
    python3-selenium python3-flask python3-flask-cors python3-itsdangerous python3-werkzeug python3-jinja2; do
    grep -qx "$p" <<<"$build" && fail "--build lists the test tool $p"
    grep -qx "$p" <<<"$full" || fail "--test does not list $p"
done
[ "$FAILS" -eq "$before" ] && pass "no test tool in the build list, all in --test's"

# Each library CMakeLists.txt requires comes from a package of the build
# list (found through the file that provides it: its .pc, or for a library
# without one, the header CMakeLists.txt looks for).
provider() { dpkg -S "$1" 2>/dev/null | head -1 | cut -d: -f1; }
modules=$(grep -oE 'pkg_check_modules\([A-Z_]+ REQUIRED IMPORTED_TARGET [a-z0-9.+-]+' \
    "$SRC/CMakeLists.txt" | awk '{print $NF}')
[ "$(wc -w <<<"$modules")" -ge 6 ] && pass "CMakeLists.txt requires: $(echo $modules)" ||
    fail "pkg_check_modules lines not found: [$modules]"
for m in $modules; do
    pc=$(pkg-config --variable=pcfiledir "$m" 2>/dev/null)/$m.pc
    pkg=$(provider "$(readlink -f "$pc")")
    [ -z "$pkg" ] && pkg=$(provider "$pc")
    if [ -n "$pkg" ] && grep -qx "$pkg" <<<"$build"; then
        pass "$m comes from $pkg, in the build list"
    else
        fail "$m ($pc) comes from [${pkg:-no package}], not in the build list"
    fi
done
headers=$(grep -oE 'find_path\([A-Z_]+ [a-z0-9_./]+\.h REQUIRED' "$SRC/CMakeLists.txt" |
    awk '{print $2}')
[ -n "$headers" ] && pass "CMakeLists.txt looks for: $(echo $headers)" || fail "no find_path found"
for h in $headers; do
    pkg=$(provider "/usr/include/$h")
    grep -qx "${pkg:-none}" <<<"$build" && pass "$h comes from $pkg, in the build list" ||
        fail "$h comes from [${pkg:-no package}], not in the build list"
done

# What the make targets run (make -n prints the commands, runs none).
for target in build run install; do
    cmds=$(make -s -C "$SRC" -n "$target" 2>&1)
    grep -q 'install-deps --build' <<<"$cmds" && ! grep -q 'install-deps --test' <<<"$cmds" &&
        pass "make $target installs the build packages only" ||
        fail "make $target: $(grep install-deps <<<"$cmds")"
    grep -q -- '-DCF_BUILD_TESTS=OFF' <<<"$cmds" && grep -q -- '-DCF_WERROR=OFF' <<<"$cmds" &&
        pass "make $target configures without tests, warnings non-fatal" ||
        fail "make $target configures: $(grep 'cmake -S' <<<"$cmds")"
done
for target in test-release test-asan fuzz; do
    cmds=$(make -s -C "$SRC" -n "$target" 2>&1)
    grep -q 'install-deps --test' <<<"$cmds" && grep -q -- '-DCF_WERROR=ON' <<<"$cmds" &&
        pass "make $target installs the test packages, warnings are errors" ||
        fail "make $target: $(grep -E 'install-deps|cmake -S' <<<"$cmds")"
done
grep -qE '^option\(CF_WERROR "[^"]*" OFF\)' "$SRC/CMakeLists.txt" &&
    pass "a plain cmake configure leaves warnings non-fatal" ||
    fail "CF_WERROR is not OFF by default: $(grep 'option(CF_WERROR' "$SRC/CMakeLists.txt")"

echo "test_install_deps.sh: $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
