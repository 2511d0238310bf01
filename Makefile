# The two commands of the README's quick start, plus helpers. Every target does its own set-up.
BUILD       ?= build
IMAGE_CACHE ?= /var/cache/vmctl/images
STATE_DIR   ?= /var/lib/vmctl
JOBS        ?= 2

SHELL       := /bin/bash
.SHELLFLAGS := -eo pipefail -c

.PHONY: all setup build image run test unit format bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Builds the default guest image into the shared cache (a cache hit takes about a second).
image: build
	@$(BUILD)/bin/vmctl serve --state-dir $(STATE_DIR) --image-cache $(IMAGE_CACHE) --prepare-only

run: image
	@$(BUILD)/bin/vmctl serve --state-dir $(STATE_DIR) --image-cache $(IMAGE_CACHE) --prepare-image \
	    --registration open

# The whole suite: unit tests, spec tests for Cloud Hypervisor/Firecracker, real QEMU guests.
test: build
	@image=$$($(BUILD)/bin/vmctl serve --state-dir $(STATE_DIR) --image-cache $(IMAGE_CACHE) \
	    --prepare-only 2>&1 | tee /dev/stderr | sed -n "s/^Image 'default' ready in //p"); \
	  VMCTL_IMAGE_CACHE=$(IMAGE_CACHE) VMCTL_TEST_IMAGE_DIR=$$image \
	    ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 900

unit: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -L 'unit|spec|agent'

format:
	@find src tests testing bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

bench: image
	@$(BUILD)/bin/vmctl_bench --image-cache $(IMAGE_CACHE)
	@$(BUILD)/bin/vmctl_net_bench --image-cache $(IMAGE_CACHE)
	@$(BUILD)/bin/vmctl_storage_bench --image-cache $(IMAGE_CACHE) --skip-cold
	@$(BUILD)/bin/vmctl_ssh_bench --image-cache $(IMAGE_CACHE)

clean:
	@rm -rf $(BUILD)
