# A thin wrapper: CMake does the building, ctest the testing.
#   make deps   install the Debian packages exoplex needs (apt-get)
#   make        build everything into build/bin
#   make test   unit and end-to-end tests (what CI runs)
#   make demo   a 10 s simulated call through the trio and a PersonaPlex stand-in
#   make run    the trio (and the stand-in without EXOPLEX_PERSONAPLEX_URLS)
#               under runit in the foreground; Ctrl-C stops it (deploy/runit)
#   make lint   validate compose, Kubernetes, systemd and monitoring files
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

# Debian 12 packages: build tools, the libraries, and what the tests use.
DEB_PACKAGES = build-essential cmake pkg-config git \
	libwebsockets-dev libopus-dev libsoxr-dev libogg-dev \
	libnng-dev nng-utils libprotobuf-c-dev protobuf-c-compiler \
	libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libcjson-dev \
	libssl-dev libinih-dev opus-tools curl python3 ca-certificates \
	runit python3-yaml yamllint docker-compose python3-kubernetes

SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && echo sudo)

.PHONY: all build deps test unit e2e demo run lint clean format

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing $$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "make deps: all Debian packages present"; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure --timeout 300

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -L unit

e2e: build
	ctest --test-dir $(BUILD) --output-on-failure -L e2e

demo: build
	BIN=$(BUILD)/bin tests/demo.sh

run: build
	BIN=$(abspath $(BUILD))/bin deploy/runit/run.sh

lint: build
	BIN=$(abspath $(BUILD))/bin bash tests/e2e/ops_manifests.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
