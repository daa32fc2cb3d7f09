# ballast — build, test and lint targets. `make test` is what CI runs.
GO        ?= go
BIN       ?= bin/ballast
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X github.com/ballast-dev/ballast/internal/version.Version=$(VERSION) \
             -X github.com/ballast-dev/ballast/internal/version.Commit=$(COMMIT)
# Per fuzz target in `make test` (60 targets: ~7 min at 5s); longer by hand,
# e.g. `make fuzz FUZZTIME=2m`.
FUZZTIME  ?= 5s
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)

.PHONY: all build test unit lint fuzz bench bench-goodput demo tidy-check clean conformance e2e-deps e2e-argocd

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ballast

# The README's test command: lint, unit and integration tests (with the race
# detector), and a short run of every fuzz target.
test: lint unit fuzz

# BALLAST_REQUIRE_REAL=1 (set by .ci/run; `make unit BALLAST_REQUIRE_REAL=1`
# by hand) fails every test whose real component is missing instead of
# skipping it.
unit: build
	BALLAST_REQUIRE_REAL=$(BALLAST_REQUIRE_REAL) BALLAST_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 30m ./...

lint: tidy-check
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

tidy-check:
	@cp go.mod /tmp/ballast-go.mod.bak; cp go.sum /tmp/ballast-go.sum.bak; \
	  $(GO) mod tidy; \
	  if ! diff -q go.mod /tmp/ballast-go.mod.bak >/dev/null || ! diff -q go.sum /tmp/ballast-go.sum.bak >/dev/null; then \
	    echo "go.mod/go.sum not tidy: run go mod tidy"; git --no-pager diff -- go.mod go.sum | head -40; \
	    cp /tmp/ballast-go.mod.bak go.mod; cp /tmp/ballast-go.sum.bak go.sum; exit 1; fi

# Every fuzz target, briefly (test/fuzz/run.sh: targets are found by name, so
# new ones join; it sidesteps Go 1.26's fuzztime deadline race).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) test/fuzz/run.sh

# The OCI distribution-spec conformance suite against the edge registry
# (also part of `unit`; this runs it alone, verbosely).
conformance:
	$(GO) test -count=1 -run '^TestOCIConformance$$' -v ./internal/registry/

bench: build
	BALLAST_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

# Goodput over an emulated GEO link (docs/BENCHMARKS.md), ballast against
# crane and regctl built pinned by bench/deps.sh; about 10 minutes.
bench-goodput: build
	bench/deps.sh
	BALLAST_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench Goodput -benchtime 1x -timeout 60m ./bench/goodput/

# The README's first command; DEMO_FLAGS=--keep leaves the edge up.
demo: build
	$(BIN) demo $(DEMO_FLAGS)

# The end-to-end test's real components (etcd, kube-apiserver, Argo CD, and
# the helm CLI Argo CD's repo-server runs), built once per machine from the
# Go module proxy into $${BALLAST_E2E_CACHE:-~/.cache/ballast/e2e} (~15 min
# cold, seconds after). After `build`: helm is built on ballast's own module
# versions and flags, so the Go build cache already holds most of it.
e2e-deps: build
	test/e2e/deps/build.sh

# Argo CD + Kubernetes end to end through ballast edge (docs/e2e.md).
e2e-argocd: build e2e-deps
	BALLAST_E2E_ARGOCD=1 BALLAST_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 15m -v -run '^TestArgoCD' ./test/e2e/

clean:
	rm -rf bin dist
