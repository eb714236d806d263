# A thin wrapper: CMake does the building, ctest the testing.
#   make deps   install the Debian packages exoplex needs (apt-get)
#   make        build everything into build/bin
#   make test   unit and end-to-end tests (what CI runs)
#   make demo   a 10 s simulated call through the trio and a PersonaPlex stand-in
#   make run    the trio (and the stand-in without EXOPLEX_PERSONAPLEX_URLS)
#               under runit in the foreground; Ctrl-C stops it (deploy/runit)
#   make lint   validate compose, Kubernetes, systemd and monitoring files
#   make test-asan  the whole suite built with AddressSanitizer + UBSan
#   make test-tsan  the unit tests and the threaded end-to-end ones built
#               with ThreadSanitizer
#   make fuzz   each libFuzzer target for FUZZ_SECONDS (60) (clang)
#   make soak   SOAK_CALLS (100) calls for SOAK_SECONDS (3600), watching
#               every process's memory and file descriptors
#   make bench  the performance benchmark (Release build in build-bench):
#               codec floor, 100 calls, a sweep; bench/results/ (not a
#               test: docs/performance.md; BENCH_ARGS="--calls N ...")
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

# Debian 12 packages: build tools, the libraries, and what the tests use.
DEB_PACKAGES = build-essential cmake pkg-config git \
	libwebsockets-dev libwebsockets-evlib-ev libev-dev \
	libopus-dev libsoxr-dev libogg-dev \
	libnng-dev nng-utils libprotobuf-c-dev protobuf-c-compiler \
	libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libcjson-dev \
	libssl-dev libinih-dev opus-tools curl python3 ca-certificates \
	runit python3-yaml yamllint docker-compose python3-kubernetes \
	clang libclang-rt-14-dev valgrind openssl

SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && echo sudo)

.PHONY: all build deps test unit e2e demo run lint clean format \
	test-asan test-tsan fuzz soak bench

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

# Hardening (docs/security.md). Sanitizer reports go to files under
# <build>/sanitizer-logs (processes the tests kill report there too) and
# fail the target; fuzz/sanitize/*.supp list known, reported findings.
ASAN_BUILD ?= build-asan
# ASAN_TESTS: a ctest -R regex to run only part of the suite under ASan.
ASAN_TESTS ?=
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
SOAK_SECONDS ?= 3600
SOAK_CALLS ?= 100
SUPP := $(abspath fuzz/sanitize)
ASAN_LOGS = $(abspath $(ASAN_BUILD))/sanitizer-logs
TSAN_LOGS = $(abspath $(TSAN_BUILD))/sanitizer-logs
ASAN_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:log_path=$(ASAN_LOGS)/asan \
	LSAN_OPTIONS=suppressions=$(SUPP)/lsan.supp \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(SUPP)/ubsan.supp:log_path=$(ASAN_LOGS)/ubsan
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(SUPP)/tsan.supp:log_path=$(TSAN_LOGS)/tsan
# check_logs DIR: print and fail on any sanitizer report.
check_logs = if ls $(1)/* >/dev/null 2>&1; then \
		for f in $(1)/*; do echo "===== $$f"; cat "$$f"; done; \
		echo "sanitizer reports above ($(1))"; exit 1; fi

# clang: its UBSan writes reports to log_path (GCC's, beside ASan, does not).
SAN_CC ?= clang

test-asan: deps
	CC=$(SAN_CC) cmake -S . -B $(ASAN_BUILD) -DEXOPLEX_SANITIZE=address,undefined $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	rm -rf $(ASAN_LOGS) && mkdir -p $(ASAN_LOGS)
	$(ASAN_ENV) ctest --test-dir $(ASAN_BUILD) --output-on-failure --timeout 600 $(if $(ASAN_TESTS),-R '$(ASAN_TESTS)'); \
	rc=$$?; $(call check_logs,$(ASAN_LOGS)); exit $$rc

test-tsan: deps
	CC=$(SAN_CC) cmake -S . -B $(TSAN_BUILD) -DEXOPLEX_SANITIZE=thread $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	rm -rf $(TSAN_LOGS) && mkdir -p $(TSAN_LOGS)
	$(TSAN_ENV) ctest --test-dir $(TSAN_BUILD) --output-on-failure -L unit --timeout 600; \
	rc=$$?; $(TSAN_ENV) ctest --test-dir $(TSAN_BUILD) --output-on-failure \
		-R '$(TSAN_E2E)' || rc=1; \
	$(call check_logs,$(TSAN_LOGS)); exit $$rc

# The end-to-end tests whose processes run the threads: admin servers
# scraped during calls, webhook delivery, STT, teardown.
TSAN_E2E = ^e2e[.](hardening_scrape|call_tone_8k|exotel_stop|webhooks_delivery|stt_transcripts_8k)$$

fuzz: deps
	[ -f $(FUZZ_BUILD)/CMakeCache.txt ] || CC=clang cmake -S . -B $(FUZZ_BUILD) \
		-DEXOPLEX_FUZZ=ON -DEXOPLEX_SANITIZE=address,undefined $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_ARGS='$(FUZZ_ARGS)' fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

FUZZ_TARGETS ?= exotel auth base64 ppframe oggdemux tcall sttmsg persona config bus wsc

soak: build
	BIN=$(abspath $(BUILD))/bin SOAK_SECONDS=$(SOAK_SECONDS) SOAK_CALLS=$(SOAK_CALLS) \
		bash tests/soak.sh

BENCH_BUILD ?= build-bench
BENCH_ARGS ?=
bench: deps
	[ -f $(BENCH_BUILD)/CMakeCache.txt ] || cmake -S . -B $(BENCH_BUILD) \
		-DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BENCH_BUILD) -j$(JOBS)
	BIN=$(abspath $(BENCH_BUILD))/bin bench/run.sh $(BENCH_ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
