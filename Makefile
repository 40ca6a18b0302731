# churn -- build, test and run.
#
#   make            build build/churn and build/libch.a (installs missing Debian packages first)
#   make test       fast tier: unit tests, CSV cases, CLI tests, Telco integration
#   make check-full test + ASan/UBSan build + valgrind run + bounded fuzzing
#   make asan       build and test with AddressSanitizer and UBSan in build/asan
#   make run        build, make default data if missing, validate, fit the pipeline
#   make bench      run the benchmarks under bench/
#   make clean
#
# Warnings are errors when CI is set (CI=true) or WERROR=1.

CC       ?= gcc
BUILD    ?= build
PKGS     := jansson libcrypto sqlite3 libpq xgboost libmicrohttpd libjwt libargon2
OPT      ?= -O2
SAN      ?=

# Fallbacks let the very first build on a fresh machine (before pkg-config
# is installed by scripts/install-deps) still find the libraries.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ljansson -lcrypto -lsqlite3 -lpq -lxgboost -lmicrohttpd -ljwt -largon2)

# -Wconversion without -Wsign-conversion: size_t/int mixing in index code
# would drown real narrowing warnings in noise.
WARN := -Wall -Wextra -Wshadow -Wconversion -Wno-sign-conversion -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wvla
ifneq ($(filter 1 true,$(WERROR) $(CI)),)
WARN += -Werror
endif

# Link-time optimization lets the per-field helpers (schema value parsing,
# frame appends) inline into the ingestion loop across files: about 7% on
# bench/ingest. gcc-ar keeps the LTO objects usable inside libch.a.
LTO      ?= -flto=auto
AR       := gcc-ar
CFLAGS   ?= $(OPT) -g
LDFLAGS  += $(LTO)
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(CFLAGS) $(LTO) $(WARN) -Iinclude -Isrc/server -fvisibility=hidden \
              $(PKG_CFLAGS) -MMD -MP
# liblinear ships no pkg-config file.
LDLIBS   := $(PKG_LIBS) -llinear -lm -lpthread
ifneq ($(SAN),)
ALL_CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SAN)
endif

LIB_SRC  := $(wildcard src/lib/*.c)
CLI_SRC  := $(wildcard src/cli/*.c) $(wildcard src/server/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c)
BENCH_SRC := $(wildcard bench/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/web_assets.o
TESTS    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
HARNESS  := $(BUILD)/obj/tests/harness.o

DEPS_STAMP := $(BUILD)/.deps-ok

# Quiet by default; V=1 prints full command lines.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

.SECONDARY:
.PHONY: tests-build all deps test check-full asan valgrind fuzz run bench clean style
all: $(BUILD)/churn $(BUILD)/libch.a

# Install whatever Debian packages are missing (a no-op when all are there).
$(DEPS_STAMP): scripts/install-deps
	@scripts/install-deps
	@mkdir -p $(@D) && touch $@
deps: $(DEPS_STAMP)

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libch.a: $(LIB_OBJ)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(BUILD)/churn: $(CLI_OBJ) $(BUILD)/libch.a
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libch.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(HARNESS) $(BUILD)/libch.a
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HARNESS) $(BUILD)/libch.a $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libch.a
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libch.a $(LDLIBS)

tests-build: $(TESTS) $(BUILD)/churn

test: tests-build
	@BUILD=$(BUILD) tests/run

asan:
	$(MAKE) BUILD=build/asan SAN=address,undefined OPT=-O1 test

valgrind: tests-build
	@BUILD=$(BUILD) CH_VALGRIND=1 tests/run

fuzz:
	@BUILD=build/fuzz scripts/fuzz $(or $(FUZZ_SECONDS),60)

check-full: test
	@scripts/install-deps --full
	$(MAKE) asan
	$(MAKE) valgrind
	$(MAKE) fuzz

run: all
	@scripts/run

bench: all $(BENCHES)
	@scripts/install-deps --bench
	@set -e; for b in bench/*.sh; do BUILD=$(BUILD) "$$b"; done

style:
	@scripts/check-style

clean:
	rm -rf build

# The OpenAPI document is assembled into h_ops.o (.incbin), which -MMD does not see.
$(BUILD)/obj/src/server/h_ops.o: src/server/openapi.json

# The web UI's files (web/) compiled into the server: scripts/embed-web writes
# a table with one .incbin per file; the files' hashes in it make it change,
# and so recompile, whenever a file does.
WEB_FILES := $(wildcard web/*)
$(BUILD)/gen/web_assets.c: scripts/embed-web web $(WEB_FILES)
	$(call say,GEN,$@)
	$(Q)scripts/embed-web $@
$(BUILD)/obj/gen/web_assets.o: $(BUILD)/gen/web_assets.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_SRC:tests/unit/%.c=$(BUILD)/obj/tests/unit/%.d)
