# Transit — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
TEMPORAL_CLI_VERSION := v1.5.1
WORKFLOWCHECK_VERSION := v0.6.0

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/.-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bin/temporal: ## build the pinned Temporal CLI (dev server + Web UI) from source, once
	@mkdir -p bin
	@echo "building temporal CLI $(TEMPORAL_CLI_VERSION) from source (about 4-5 minutes on 2 cores the first time, then cached)..."
	GOBIN=$(CURDIR)/bin $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

.PHONY: build
build: ## build bin/transit
	$(GO) build -o bin/transit ./cmd/transit

.PHONY: run
run: bin/temporal build ## everything on one machine: Temporal dev server + UI, worker, API (demo catalog)
	./bin/transit dev --demo

.PHONY: test
test: bin/temporal ## unit, store (SQLite + Postgres) and integration tests (real Temporal, Postgres, HTTP)
	./scripts/test.sh

.PHONY: lint
lint: bin/workflowcheck ## gofmt, go vet and workflowcheck (determinism of workflow code)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...
	./bin/workflowcheck ./workflows/...

bin/workflowcheck:
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

.PHONY: bench
bench: bin/temporal ## benchmarks (integration/bench_test.go) against a real dev server; figures and ratios
	./scripts/bench.sh

.PHONY: clean
clean: ## remove build output and the dev state under .transit/ (keeps bin/temporal)
	rm -rf bin/transit bin/workflowcheck .transit
