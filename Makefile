# The two commands of the README's quick start, plus helpers. Every target does its own set-up.
BUILD       ?= build
IMAGE_CACHE ?= /var/cache/vmctl/images
STATE_DIR   ?= /var/lib/vmctl
JOBS        ?= 2
# The sanitizer build, which also holds the fuzzers, lives beside the main one (docs/fuzzing.md).
ASAN_BUILD  ?= build-asan
FUZZ_SECONDS ?= 60
FUZZERS     ?=

SHELL       := /bin/bash
.SHELLFLAGS := -eo pipefail -c

.PHONY: all setup configure build image run test unit browser-test asan-configure test-sanitize fuzz-build fuzz fuzz-regression format bench bench-proxy \
        clean

all: build

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Builds the default guest image into the shared cache (a cache hit takes about a second).
image: build
	@$(BUILD)/bin/vmctl serve --state-dir $(STATE_DIR) --image-cache $(IMAGE_CACHE) --prepare-only

run: image
	@$(BUILD)/bin/vmctl serve --state-dir $(STATE_DIR) --image-cache $(IMAGE_CACHE) --prepare-image \
	    --registration open

# The whole suite: unit tests, spec tests for Cloud Hypervisor/Firecracker, real QEMU guests; then
# the unit and agent suites under ASan+UBSan, and every fuzz corpus replayed once. The sanitizer
# build runs at the lowest priority beside the rest (scripts/test.sh says why).
test: configure asan-configure
	@bash scripts/test.sh $(BUILD) $(ASAN_BUILD) $(JOBS) $(STATE_DIR) $(IMAGE_CACHE)

unit: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -L 'unit|spec|agent'

# The HTTPS proxy in a real headless Chromium (tests/e2e/browser_test.cc), on its own.
browser-test: image
	@VMCTL_IMAGE_CACHE=$(IMAGE_CACHE) ctest --test-dir $(BUILD) --output-on-failure -R '^BrowserTest\.'

# One clang build with -fsanitize=address,undefined (plus libFuzzer's coverage) compiles every
# library once for both: the unit and agent test binaries, run under the sanitizers (any report
# fails its test), and the libFuzzer targets. Only those and the libraries they link are built.
# clang, because it compiles sanitized code about twice as fast as g++ here.
asan-configure: setup
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_CXX_COMPILER=clang++ -DVMCTL_SANITIZE=address,undefined -DVMCTL_FUZZ=ON >/dev/null

test-sanitize: asan-configure
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target unit_tests
	@ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -L 'unit|agent' -E '^clang_format$$'

fuzz-build: asan-configure
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target fuzzers

# Each target (or those in FUZZERS) for FUZZ_SECONDS on a copy of its corpus in fuzz/corpus.
fuzz: fuzz-build
	@scripts/fuzz.sh $(ASAN_BUILD) $(FUZZ_SECONDS) $(FUZZERS)

# Every corpus file run once through its target: a quick regression.
fuzz-regression: fuzz-build
	@ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -L fuzz

format:
	@find src tests testing bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

bench: image
	@$(BUILD)/bin/vmctl_bench --image-cache $(IMAGE_CACHE)
	@$(BUILD)/bin/vmctl_net_bench --image-cache $(IMAGE_CACHE)
	@$(BUILD)/bin/vmctl_storage_bench --image-cache $(IMAGE_CACHE) --skip-cold
	@$(BUILD)/bin/vmctl_ssh_bench --image-cache $(IMAGE_CACHE)
	@$(BUILD)/bin/vmctl_proxy_bench

# The HTTPS proxy against nginx (bench/RESULTS.md); needs no guest image. PROXY_BENCH_ARGS, e.g.
# --duration 5 --idle 1000.
PROXY_BENCH_ARGS ?=
bench-proxy: build
	@$(BUILD)/bin/vmctl_proxy_bench $(PROXY_BENCH_ARGS)

clean:
	@rm -rf $(BUILD) $(ASAN_BUILD)
