# Portcullis — GNU make build.
#
#   make            release binary: build/portcullis
#   make check      install what is missing, then unit + case + integration
#                   tests, everything built with ASan + UBSan
#   make demo       install what is missing, build, start the gateway in
#                   front of the example upstreams (examples/demo.yaml)
#   make bench      the benchmark in bench/ (see bench/README.md)
#   make deps       only install what is missing (apt + npm)

CC      ?= cc
PKGS    := libevent libevent_openssl jansson yaml-0.1 libssl libcrypto sqlite3 cjose \
           libpcre2-8
# libcurl: headers only; src/lib/fetch.c loads it on first use (dlopen), so
# a gateway without a remote JWKS never maps it and its dependencies.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) libcurl 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
           -Wstrict-prototypes -Wmissing-prototypes -Wvla
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) -fno-strict-aliasing \
           -fstack-protector-strong -Isrc $(PKG_CFLAGS)

REL_CFLAGS  := $(BASE_CFLAGS) -O2 -g -D_FORTIFY_SOURCE=2 -fPIE
REL_LDFLAGS := -pie -Wl,-z,relro,-z,now
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS)

SRCS      := $(sort $(wildcard src/*/*.c))
LIB_SRCS  := $(filter-out src/cli/%,$(SRCS))
CLI_SRCS  := $(filter src/cli/%,$(SRCS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
FIX_SRCS  := $(sort $(wildcard tests/fixtures/*.c))
BENCH_SRCS:= $(sort $(wildcard bench/*.c))

REL  := build/rel
ASAN := build/asan

REL_OBJS  := $(SRCS:%.c=$(REL)/%.o)
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=$(ASAN)/%.o)
ASAN_CLI_OBJS := $(CLI_SRCS:%.c=$(ASAN)/%.o)

.PHONY: all check demo bench deps clean unit cases integration asan fixtures fuzz
all: build/portcullis

build/portcullis: $(REL)/portcullis
	@ln -sf rel/portcullis $@

$(REL)/portcullis: $(REL_OBJS)
	$(CC) $(REL_CFLAGS) $(REL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(REL)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -MMD -MP -c -o $@ $<

$(ASAN)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -MMD -MP -c -o $@ $<

$(ASAN)/portcullis: $(ASAN_LIB_OBJS) $(ASAN_CLI_OBJS)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests link every module except the CLI.
$(ASAN)/tests/unit/%: tests/unit/%.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

# Test fixtures (C upstreams) and bench tools are built without sanitizers:
# they are not the code under test.
FIX_BINS   := $(FIX_SRCS:tests/fixtures/%.c=build/fixtures/%)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=build/bench/%) build/bench/h2o_uv_floor
build/fixtures/%: tests/fixtures/%.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -o $@ $< $(PKG_LIBS)
build/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -o $@ $< $(PKG_LIBS) -lpthread

# The JSON-Schema-Test-Suite runner (tests/schema_suite.c), ASan build.
$(ASAN)/tests/schema_suite: tests/schema_suite.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS)
SUITE_BIN := $(if $(wildcard tests/schema_suite.c),$(ASAN)/tests/schema_suite)

# The h2o floor (bench only) links Debian's libh2o-evloop.
build/bench/h2o_floor: bench/h2o_floor.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Wmissing-prototypes -Wstrict-prototypes,$(REL_CFLAGS)) \
	    $(shell pkg-config --cflags libh2o-evloop) -Wno-error -o $@ $< \
	    $(shell pkg-config --libs libh2o-evloop) -ljansson

# The same floor on libh2o built with libuv, its loop embedded in libevent.
build/bench/h2o_uv_floor: bench/h2o_floor.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Wmissing-prototypes -Wstrict-prototypes,$(REL_CFLAGS)) \
	    -DH2O_USE_LIBUV=1 $(shell pkg-config --cflags libh2o libuv) \
	    -Wno-error -o $@ $< \
	    $(shell pkg-config --libs libh2o libuv libevent) -ljansson

# In-process micro-benchmarks link the gateway's own modules.
REL_LIB_OBJS := $(LIB_SRCS:%.c=$(REL)/%.o)
build/bench/audit_bench: bench/audit_bench.c $(REL_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(PKG_LIBS)
build/bench/policy_cost: bench/policy_cost.c $(REL_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(PKG_LIBS)
build/bench/authn_cost: bench/authn_cost.c $(REL_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(PKG_LIBS)

fixtures: $(FIX_BINS)
asan: $(ASAN)/portcullis

UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(ASAN)/tests/unit/%)

# Fuzz targets: replayed over their corpus in `make check` (gcc + ASan),
# fuzzed for real with clang's libFuzzer by `make fuzz`.
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
REPLAY_BINS := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=$(ASAN)/tests/fuzz/replay_%)
$(ASAN)/tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS)
FUZZ_SECONDS ?= 60
fuzz:
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c | sed 's/^fuzz_//'); \
	  clang-14 -std=c17 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -o build/fuzz/$$n $$f $(LIB_SRCS) $(PKG_LIBS) || exit 1; \
	  mkdir -p build/fuzz/corpus-$$n; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus-$$n tests/fuzz/corpus/$$n || exit 1; \
	done

deps:
	@scripts/deps.sh

unit: $(UNIT_BINS) $(FIX_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

check: deps
	@$(MAKE) --no-print-directory asan fixtures $(UNIT_BINS) $(REPLAY_BINS) $(SUITE_BIN) $(BENCH_BINS) build/portcullis
	@scripts/check.sh

demo: deps
	@$(MAKE) --no-print-directory build/portcullis
	@scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory build/portcullis $(FIX_BINS) $(BENCH_BINS)
	@bench/run.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
