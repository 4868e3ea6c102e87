# takedown: the README's commands call these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN      := $(CURDIR)/bin
PKGS     := ./...
SERVICES := intake ncmec-reporter case-writer audit-logger retraction
VERSITYGW_VERSION := v1.8.0
# How long make fuzz runs each fuzz target, and minimizes each input it
# finds: Go's default, 60s, would spend a short run minimizing the first
# new input of a target that answers over HTTP instead of exploring.
FUZZTIME ?= 5s
FUZZMINIMIZETIME ?= 1s

# The tools module pins buf, protoc-gen-go, staticcheck and hydra.
TOOL := cd tools && go build -o $(BIN)

.PHONY: help tools proto proto-check build run test fuzz chaos bench lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

tools: $(BIN)/versitygw $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/staticcheck $(BIN)/hydra ## install the pinned tools into ./bin

$(BIN)/versitygw:
	GOBIN=$(BIN) go install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
$(BIN)/buf: tools/go.mod
	$(TOOL) github.com/bufbuild/buf/cmd/buf
$(BIN)/protoc-gen-go: tools/go.mod
	$(TOOL) google.golang.org/protobuf/cmd/protoc-gen-go
$(BIN)/staticcheck: tools/go.mod
	$(TOOL) honnef.co/go/tools/cmd/staticcheck
# Ory Hydra, the OpenID Connect provider the sign-in tests run against
# (pkg/testenv.StartHydra), on its in-memory SQLite store: cgo and gcc.
$(BIN)/hydra: tools/go.mod
	cd tools && CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension -o $(BIN)/hydra github.com/ory/hydra/v2

proto: $(BIN)/buf $(BIN)/protoc-gen-go ## regenerate the Go code of the event contract
	$(BIN)/buf lint
	$(BIN)/buf generate

proto-check: proto ## fail when the committed generated code differs from a fresh generation
	@git diff --exit-code -- pkg/proto || { echo "pkg/proto is stale: run make proto and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- pkg/proto)" || { echo "make proto made new files under pkg/proto: commit them"; exit 1; }

build: ## build every service and the simulators into ./bin
	@for s in $(SERVICES); do go build -o $(BIN)/$$s ./services/$$s || exit 1; done
	go build -o $(BIN)/ ./pkg/cmd/...

run: tools build ## run the whole system locally (Ctrl-C stops it)
	$(BIN)/devstack -root $(CURDIR)

test: tools ## run every package's tests against real PostgreSQL, NATS and S3, then make fuzz
	go test -count=1 -timeout 20m $(PKGS)
	@$(MAKE) --no-print-directory fuzz

# Every func FuzzX of a _test.go file runs, so a new target needs no list
# kept here. An input that fails is written to the package's
# testdata/fuzz/FuzzX/ and from then on runs in every go test: commit it
# with the fix.
fuzz: tools ## run every fuzz target for FUZZTIME (default 5s) each, seed corpora under testdata/fuzz
	@grep -rH --include='*_test.go' '^func Fuzz' $(CURDIR) | sed -E 's|^(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*).*|\1 \2|' | sort -u | \
	while read -r dir target; do \
		echo "fuzz $$target in $${dir#$(CURDIR)/} for $(FUZZTIME)"; \
		go test -run "^$$target\$$" -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) -timeout 10m "$$dir" || exit 1; \
	done

chaos: tools ## the chaos suite, with one instance and with two replicas: a seeded load while processes die and remote APIs fail (TAKEDOWN_CHAOS_SEED repeats a run)
	cd e2e && TAKEDOWN_CHAOS=1 go test -count=1 -timeout 30m -run '^TestChaos$$' -v .

bench: tools ## run the benchmarks (figures in the README)
	go test -run '^$$' -bench . -benchtime 1x -timeout 60m $(PKGS)

lint: $(BIN)/staticcheck ## go vet, staticcheck, and go.mod/go.sum as go mod tidy writes them
	@go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit"; exit 1; }
	go vet $(PKGS)
	$(BIN)/staticcheck $(PKGS)

clean: ## remove built binaries and local data
	rm -rf $(BIN) var test-artifacts
