# Developer entry points. CI runs .ci/run (gofmt, vet, staticcheck, go test -race, short
# fuzzing); these targets are the same checks plus the long-running
# benchmarks and fuzzing that stay out of `go test ./...`.

GO ?= go
FUZZTIME ?= 2m
DUR ?= 20s
SCHED_N ?= 20000
MEM_RECORDS ?= 1000000
MEM_PROFILES ?= 100000

.PHONY: test test-short proof bench bench-ingest bench-sched bench-memory fuzz loadtest

## test: gofmt, vet, staticcheck and the race-enabled test suite (as CI)
test:
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) test -race -count=1 -timeout 45m ./...

## test-short: the quick tests only (skips the crash and backup tests)
test-short:
	$(GO) test -short -count=1 ./...

## proof: the guarantee tests of CONTRACT §6 (crash, duplicates, hostile input, security, privacy)
proof:
	$(GO) test -race -count=1 -v -timeout 15m ./proof/

## bench: every benchmark below, then the Go micro-benchmarks of storage
bench: bench-ingest bench-sched bench-memory
	$(GO) test -run '^$$' -bench . -benchtime 3s ./storage/

## bench-ingest: nudge vs the no-store baseline under identical loads (bench/run.sh)
bench-ingest:
	DUR=$(DUR) bench/run.sh

## bench-sched: due journey steps per second through the log sender
bench-sched:
	$(GO) run ./bench/sched -n $(SCHED_N)

## bench-memory: fill 1M records / 100k profiles, serve them under load, report peak RSS
bench-memory:
	RECORDS=$(MEM_RECORDS) PROFILES=$(MEM_PROFILES) bench/memory.sh

## loadtest: one load against a nudge you run yourself: make loadtest URL=http://127.0.0.1:8080 KIND=shopify-order
URL ?= http://127.0.0.1:8080
KIND ?= shopify-order
SECRET ?= dev-secret
CONC ?= 64
RATE ?= 0
loadtest:
	$(GO) run ./bench/loadgen -url $(URL) -kind $(KIND) -secret $(SECRET) -c $(CONC) -rate $(RATE) -duration $(DUR)

## fuzz: every Fuzz target for FUZZTIME each (default 2m; CI runs 5s)
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)
