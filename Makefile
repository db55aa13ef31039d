# Sluice: `make run` serves the embedded default, `make test` runs every test.

GO       ?= go
PLUGINS  := pii contentfilter
C_PLUGINS := promptguard
WASM     := $(PLUGINS:%=bin/plugins/%.wasm) $(C_PLUGINS:%=bin/plugins/%.wasm)
GO_SRC   := $(shell find host plugins sdk policies -name '*.go' -o -name '*.rego' -o -name '*.sql' -o -name '*.yaml' 2>/dev/null)
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The plugins are embedded in bin/sluice from this folder (git-ignored but for
# a placeholder), pinned by the SHA256SUMS written beside them.
EMBED    := host/builtin/plugins
EMBEDDED := $(WASM:bin/plugins/%=$(EMBED)/%) $(EMBED)/SHA256SUMS

.PHONY: all build plugins run test bench bench-check profile image check-go clean

all: build

## build: the plugin modules (bin/plugins/*.wasm), then the gateway binary (bin/sluice) that embeds them
build: bin/sluice plugins

# Static (no cgo: SQLite is pure Go), so that the binary runs on any Linux and
# in an image with nothing else in it.
bin/sluice: check-go $(GO_SRC) go.mod go.sum $(EMBEDDED)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $@ ./host/cmd/sluice

## plugins: the plugin modules, and their copies for embedding (then `go install ./host/cmd/sluice` carries them too)
plugins: check-go $(WASM) $(EMBEDDED)

$(EMBED)/%.wasm: bin/plugins/%.wasm
	cp $< $@

$(EMBED)/SHA256SUMS: $(WASM:bin/plugins/%=$(EMBED)/%)
	cd $(EMBED) && sha256sum $(notdir $^) > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS

bin/plugins/%.wasm: $(GO_SRC)
	@mkdir -p bin/plugins
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $@ ./plugins/$*/wasm

# The C plugin: a WASI reactor built with Debian's clang, lld and wasi-libc.
# -mexec-model=reactor links crt1-reactor.o, which provides _initialize; the
# sources name their exports with export_name, so nothing else is exported.
CLANG      ?= clang
WASI_DEBS  := clang lld wasi-libc libclang-rt-14-dev-wasm32
WASI_FLAGS := --target=wasm32-wasi -mexec-model=reactor -O2 -std=gnu11 -Wall -Wextra \
              -Wl,--stack-first -Wl,--strip-all
PROMPTGUARD_SRC := $(wildcard plugins/promptguard/*.c plugins/promptguard/*.h)

bin/plugins/promptguard.wasm: $(PROMPTGUARD_SRC) Makefile
	@scripts/ensure-packages $(WASI_DEBS)
	@mkdir -p bin/plugins
	$(CLANG) $(WASI_FLAGS) -o $@.tmp $(filter %.c,$^) && mv $@.tmp $@

## run: build, then serve the embedded default on 127.0.0.1:8080 (admin on :8081);
## LISTEN=127.0.0.1:9090 serves elsewhere, ARGS='…' passes any other flags of `sluice serve`
run: build
	./bin/sluice serve $(if $(LISTEN),--listen $(LISTEN)) $(ARGS)

## test: every test of the module, against real SQLite, PostgreSQL, Redis, OPA, wazero and the built plugins
test: build
	eval "$$(scripts/test-services)" && $(GO) test -count=1 -timeout 30m ./...

## bench: end-to-end load against the upstream direct, a bare proxy and Sluice; then the plugin host,
## the limiter (in memory and in Redis: test-services starts one) and one policy decision
bench: build
	eval "$$(scripts/test-services)" && $(GO) run ./host/cmd/sluice-bench $(BENCH_FLAGS)

## bench-check: the end-to-end section, then compare its ratios with those BENCHMARKS.md records; exits 1 on a
## figure worse in every round (not in CI: the machine is shared; run it before recording new figures)
bench-check: build
	$(GO) run ./host/cmd/sluice-bench -only e2e -check BENCHMARKS.md $(BENCH_FLAGS)

## profile: load one Sluice (everything on) and write its CPU and allocation profiles, and their tops, to bench/
profile: build
	$(GO) run ./host/cmd/sluice-bench -profile bench -duration 10s $(BENCH_FLAGS)

## image: the OCI image of Containerfile (FROM scratch: the static binary alone), with Debian's podman
IMAGE ?= sluice:latest
image: bin/sluice
	@scripts/ensure-packages podman
	rm -rf bin/image && mkdir -p bin/image/data && cp bin/sluice bin/image/sluice
	podman build --pull=never -f Containerfile -t $(IMAGE) bin/image

check-go:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 or newer is needed: https://go.dev/doc/install" >&2; exit 1; }

clean:
	rm -rf bin $(EMBED)/*.wasm $(EMBED)/SHA256SUMS
