# Everything runs from the virtual environment in .venv/ that `make install` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
GEN_PY := protos/python/src

.PHONY: install run test test-unit test-integration test-e2e failover-async bench bench-whatif bench-pricing lint \
	protos buf-lint buf-breaking links check-config clean clients check-generated node-deps node-build \
	go-vendor \
	go-build

install: $(STAMP)

$(STAMP): pyproject.toml protos/python/pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e protos/python -e clients/python -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/loyalty-server

test: install
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q tests/unit

test-integration: install
	$(BIN)/pytest -q tests/integration

test-e2e: install
	$(BIN)/pytest -q tests/e2e

# What a database failover loses with asynchronous replication (docs/failover.md): a
# measurement on a throwaway primary and standby, outside `make test`.
failover-async: install
	$(BIN)/pytest -q -s tests/reliability/measure_async_failover.py

# The service under load next to its baselines (bench/); QUICK=1 for a run within two minutes,
# BENCH_ARGS for any other option of `python -m bench --help`.
bench: install
	$(PY) -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

# What-if replay throughput on seeded 20-line orders (docs/whatif.md).
bench-whatif: install
	$(PY) -m bench.whatif $(BENCH_ARGS)

# The pricing core alone (pytest-benchmark).
bench-pricing: install
	$(BIN)/pytest -q tests/bench --benchmark-enable --benchmark-only

lint: install buf-lint buf-breaking links
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every link of the tracked Markdown files stays in the repository or goes to a public https site.
links: install
	$(PY) -m tools.check_links

# Regenerate the Python stubs (messages, gRPC, .pyi) from protos/.
# The generator is pinned: generated code checks at import time that the
# installed grpcio/protobuf are at least the versions that generated it, so
# protos/python/pyproject.toml's lower bounds (loyalty-stubs) must move with these pins.
GRPC_TOOLS_VERSION := 1.85.1
MYPY_PROTOBUF_VERSION := 5.1.0
GEN_PKG := $(GEN_PY)/loyalty/v1

protos: install
	$(PY) -m pip install --quiet 'grpcio-tools==$(GRPC_TOOLS_VERSION)' 'mypy-protobuf==$(MYPY_PROTOBUF_VERSION)'
	rm -f $(GEN_PKG)/*_pb2.py $(GEN_PKG)/*_pb2_grpc.py $(GEN_PKG)/*_pb2.pyi $(GEN_PKG)/*_pb2_grpc.pyi
	$(PY) -m grpc_tools.protoc -I protos \
	  --python_out=$(GEN_PY) --grpc_python_out=$(GEN_PY) \
	  --mypy_out=$(GEN_PY) --mypy_grpc_out=$(GEN_PY) \
	  --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
	  --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	  protos/loyalty/v1/*.proto
	$(PY) -c "from loyalty.v1 import account_service_pb2_grpc, redemption_service_pb2_grpc, errors_pb2"

BUF := npx --yes @bufbuild/buf@1.75.0

buf-lint:
	cd protos && $(BUF) lint

# The API may only grow (docs/compatibility.md): compare protos/ as in the working tree with
# the latest release tag `v*` reachable from HEAD, or, before the first release or in a clone
# without tags, with the commit before the last one. BUF_AGAINST=REF compares with any other.
BUF_AGAINST ?= $(shell git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || echo HEAD~1)
buf-breaking:
	@if git rev-parse -q --verify '$(BUF_AGAINST)^{commit}' >/dev/null; then \
	  echo "buf breaking: protos/ against $(BUF_AGAINST)"; \
	  cd protos && $(BUF) breaking --against "$$(git rev-parse --path-format=absolute --git-common-dir)#ref=$(BUF_AGAINST),subdir=protos"; \
	else echo "buf breaking: no $(BUF_AGAINST) to compare with"; fi

check-config: install
	$(BIN)/loyalty-server check-config

# Regenerate every client from protos/: the Python stubs (`protos` above), then
# the Node (ts-proto) and Go (protoc-gen-go, protoc-gen-go-grpc) code through
# `buf generate` with local plugins only (protos/buf.gen.yaml), so it works
# offline once clients/node's npm packages and Debian's Go plugins are in.
NODE := clients/node
GO := clients/go
GEN_DIRS := $(GEN_PKG) $(NODE)/src/gen $(GO)/loyalty

clients: protos node-deps
	@command -v protoc-gen-go >/dev/null && command -v protoc-gen-go-grpc >/dev/null || \
	  { echo "protoc-gen-go / protoc-gen-go-grpc missing: apt-get install protoc-gen-go protoc-gen-go-grpc"; exit 1; }
	rm -rf $(NODE)/src/gen $(GO)/loyalty
	cd protos && $(BUF) generate

# CI: what is committed must be exactly what `make clients` generates.
check-generated: clients
	@changed="$$(git status --porcelain --untracked-files=all -- $(GEN_DIRS))"; \
	if [ -n "$$changed" ]; then \
	  echo "Generated clients differ from what is committed; run 'make clients' and commit:"; \
	  echo "$$changed"; git --no-pager diff --stat -- $(GEN_DIRS); exit 1; \
	fi

# Node: packages from the lockfile, then the client and its example compiled to dist/.
node-deps: $(NODE)/node_modules/.installed

$(NODE)/node_modules/.installed: $(NODE)/package-lock.json
	cd $(NODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-build: node-deps
	cd $(NODE) && npm run --silent build

# Go: builds offline against Debian's Go packages (see clients/go/debian-vendor.sh).
GO_ENV := GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on

go-vendor: $(GO)/vendor/modules.txt

$(GO)/vendor/modules.txt: $(GO)/go.mod $(GO)/debian-vendor.sh
	$(GO)/debian-vendor.sh

go-build: go-vendor
	@test -z "$$(gofmt -l $(GO)/cmd $(GO)/loyalty)" || { gofmt -l $(GO)/cmd $(GO)/loyalty; echo "gofmt: files above"; exit 1; }
	cd $(GO) && $(GO_ENV) go vet ./... && $(GO_ENV) go build -o bin/scenario ./cmd/scenario

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache \
	  $(NODE)/node_modules $(NODE)/dist $(GO)/vendor $(GO)/bin
