# dcres: the two set-up commands of README.md, plus helpers.
#   make demo   build everything and run the demo (the most complete
#               lifecycle that works so far)
#   make test   build everything and run the whole suite through ctest
#   make bench  build everything and run the measurements in experiments/
# Both first install missing Debian packages (scripts/install-deps.sh).
BUILD ?= build
CMAKE_ARGS ?=
CTEST_ARGS ?=

.PHONY: all deps configure build test demo bench clean

all: build

deps:
	scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure $(CTEST_ARGS)

demo: build
	scripts/demo.sh $(BUILD)

bench: build
	$(BUILD)/memory-server/dcres-memserver-bench --server $(BUILD)/memory-server/dcres-memserver --dir /var/tmp
	$(BUILD)/main-host/pager/dcres-pager-bench --server $(BUILD)/memory-server/dcres-memserver
	experiments/guest-boot-time.sh $(BUILD)
	experiments/split-vs-local.sh $(BUILD)
	experiments/ckpt-bench.sh $(BUILD)
	experiments/downtime-bench.sh $(BUILD)
	experiments/restore-bench.sh $(BUILD)
	experiments/replica-bench.sh $(BUILD)

clean:
	rm -rf $(BUILD)
