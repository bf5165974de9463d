# Neocortex build, test and benchmark targets.
GO ?= go
PROTOC ?= protoc
GOBIN ?= $(shell $(GO) env GOPATH)/bin

.PHONY: all build test integration bench generate lint fmt clean

all: build

build:
	$(GO) build -o bin/neocortex ./cmd/neocortex

# Unit tests and in-process end-to-end tests: fast.
test:
	$(GO) test -race -count=1 -timeout 15m ./...

# Real-process suites (build tag "integration"): Neocortex processes with a
# real Prometheus and etcd, installed from Debian packages where missing.
integration:
	./scripts/install-integration-deps.sh
	$(GO) test -count=1 -timeout 30m -tags integration ./integration/...

# Hot-path Go benchmarks, then the end-to-end scenarios against a fresh
# single binary (scripts/bench-e2e.sh); one line per figure.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./pkg/...
	./scripts/bench-e2e.sh

# Regenerate the gRPC code from the .proto files.
generate:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
	PATH="$(GOBIN):$$PATH" $(GO) generate ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	# stdmethods off: Prometheus's chunkenc.Iterator has a Seek(int64) that
	# vet takes for a malformed io.Seeker.
	$(GO) vet -stdmethods=false ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data

# Remote-write load generator and correctness checker (tools/loadgen/README.md).
.PHONY: loadgen
loadgen:
	$(GO) build -o bin/loadgen ./tools/loadgen
