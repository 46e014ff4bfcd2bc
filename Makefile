run:
	go run ./cmd/vaultd serve

test:
	scripts/test.sh

bench:
	scripts/bench.sh

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

.PHONY: run test bench lint
