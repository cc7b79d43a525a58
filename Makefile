# Carafe — the README's two commands (`make run`, `make test`) and the
# usual targets. Each installs missing Debian packages first: build, run and
# install only what building needs, the test targets the test tools too.
# build, run and install leave the tests out and warnings non-fatal, so a
# newer compiler's new warning cannot stop an install; the test builds (their
# own directories) make warnings errors, as CI does.

BUILD        ?= build
TEST_BUILD   ?= build-test
ASAN_BUILD   ?= build-asan
FUZZ_BUILD   ?= build-fuzz
PREFIX       ?= /usr/local
PORT         ?= 8000
FUZZ_SECONDS ?= 60
JOBS         ?= $(shell nproc)
BENCH        ?= ../shared/bench/run

.PHONY: all deps test-deps build run test test-release test-asan fuzz install bench clean

all: build

deps:
	@scripts/install-deps --build

test-deps:
	@scripts/install-deps --test

# The library, the examples and the tools.
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	  -DCF_BUILD_TESTS=OFF -DCF_WERROR=OFF
	cmake --build $(BUILD) -j$(JOBS)

# Serves the flagship example (examples/seeds, SQLite file seeds.db in the
# current directory) on http://127.0.0.1:$(PORT).
run: build
	PORT=$(PORT) $(BUILD)/examples/seeds

# The whole suite: optimized build, then ASan+UBSan build, then the four
# fuzzers (the HTTP parser; the app pipeline; the multipart parser; the
# template engine) for
# $(FUZZ_SECONDS) seconds each.
test: test-release test-asan fuzz

test-release: test-deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Release -DCF_BUILD_TESTS=ON -DCF_WERROR=ON
	cmake --build $(TEST_BUILD) -j$(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j2

test-asan: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCF_SANITIZE=ON -DCF_BUILD_TESTS=ON \
	  -DCF_WERROR=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j2

fuzz: test-deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCF_FUZZ=ON -DCF_WERROR=ON
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_parser fuzz_app fuzz_multipart fuzz_template
	mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/corpus_app $(FUZZ_BUILD)/corpus_multipart $(FUZZ_BUILD)/corpus_template
	$(FUZZ_BUILD)/tests/fuzz_parser -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(FUZZ_BUILD)/corpus tests/fuzz/corpus_parser
	$(FUZZ_BUILD)/tests/fuzz_app -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(FUZZ_BUILD)/corpus_app tests/fuzz/corpus_app
	$(FUZZ_BUILD)/tests/fuzz_multipart -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(FUZZ_BUILD)/corpus_multipart tests/fuzz/corpus_multipart
	$(FUZZ_BUILD)/tests/fuzz_template -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(FUZZ_BUILD)/corpus_template tests/fuzz/corpus_template

install: build
	cmake --install $(BUILD)
	-[ "$$(id -u)" -ne 0 ] || ldconfig

# Carafe's bench server against the peers (see examples/bench/README.md).
bench: build
	PROJECT_BENCH_CMD='exec $(CURDIR)/$(BUILD)/examples/bench' \
	PROJECT_SCENARIOS=plaintext,json,sleep100,fanout,db,fortunes \
	$(BENCH) --only project,nginx,kore,fastapi-uvicorn --scenarios plaintext,json,sleep100,fanout,db,fortunes

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
