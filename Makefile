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

.PHONY: all deps configure build test check sanitize demo clean

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
	  cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -LE bench

# The developer loop: unit and MPI tests only (no Slurm, no CLI figures), a few minutes.
check: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -L "unit|mpi" -LE bench

# ASan + UBSan over the unit and MPI tests in a separate CPU-only build (build-sanitize/); about
# twice the time of `make check`. CI does not run it (its time limit); run it before a change to
# the communicators, the exchanges or the arenas.
SANITIZE_DIR ?= build-sanitize
sanitize: deps
	cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRESCO_SANITIZE=ON -DFRESCO_CUDA=OFF \
	  -DFRESCO_LINK_CHECKS=OFF $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	cd $(SANITIZE_DIR) && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j $(JOBS) -L "unit|mpi" -LE bench

demo: build
	scripts/demo.sh $(BUILD_DIR)/fresco $(DEMO_DIR) $(DEMO_RANKS)

clean:
	rm -rf $(BUILD_DIR) $(DEMO_DIR) $(SANITIZE_DIR)
