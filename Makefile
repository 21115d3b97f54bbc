# Convenience front end: `make demo` and `make test` set up a fresh Debian 12 machine
# (missing apt packages), configure, build and run. Cluster users call cmake directly
# (see README.md and docs/cluster.md).
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
DEMO_DIR ?= demo-out
DEMO_RANKS ?= 4

# Running as root (containers, CI) needs OpenMPI's explicit consent.
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1

.PHONY: all deps configure build test demo clean

all: build

deps:
	@CMAKE_FLAGS="$(CMAKE_FLAGS)" scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# A single-node Slurm runs during the tests (scripts/slurm.sh: installed if missing, started by
# hand, stopped by pid afterwards, also when a test fails); where it cannot start, the
# slurm-labelled tests skip and say why.
test: build
	@scripts/slurm.sh start || echo "make test: no Slurm (see above); the slurm-labelled tests will skip"
	@trap 'cd $(CURDIR) && scripts/slurm.sh stop' EXIT INT TERM; \
	  cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

demo: build
	scripts/demo.sh $(BUILD_DIR)/fresco $(DEMO_DIR) $(DEMO_RANKS)

clean:
	rm -rf $(BUILD_DIR) $(DEMO_DIR)
