# Weft — the developer entry points. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: help deps build test test-unit e2e e2e-cluster manifests manifests-check lint fmt demo run bench bench-proxy bench-instructions bench-summary bench-criterion bench-deps bundle bundle-check images bundle-image doc clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## Build every binary (weft-operator, weft-proxy, weftctl) in release mode
	$(CARGO) build $(CARGO_FLAGS) --release --workspace --bins

test: deps ## Run every test: unit, golden, protocol and (as root) the network-namespace data-path suite
	$(CARGO) build $(CARGO_FLAGS) --workspace --bins
	$(CARGO) test $(CARGO_FLAGS) --workspace

test-unit: ## Run the tests that need neither root nor a cluster
	WEFT_E2E_SKIP_NETNS=1 $(CARGO) test $(CARGO_FLAGS) --workspace

e2e: ## Run only the data-path end-to-end suite (needs root, ip, iptables)
	$(CARGO) test $(CARGO_FLAGS) -p weft-e2e -- --nocapture

e2e-cluster: ## Run the cluster end-to-end tests against the cluster in KUBECONFIG (skips without one)
	WEFT_E2E_CLUSTER=1 $(CARGO) test $(CARGO_FLAGS) -p weft-crds --test cluster -- --nocapture
	WEFT_E2E_CLUSTER=1 $(CARGO) test $(CARGO_FLAGS) -p weft-e2e --test cluster_operator -- --nocapture

manifests: ## Regenerate the CRDs in config/crd/bases from the types in crds/
	$(CARGO) run $(CARGO_FLAGS) -q -p weft-crds --bin crdgen -- config/crd/bases

manifests-check: manifests ## Fail when the checked-in CRDs differ from the types
	@git diff --exit-code -- config/crd || { echo "config/crd is out of date: run 'make manifests' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- config/crd)" || { echo "untracked generated CRDs: run 'make manifests' and commit"; git status --porcelain -- config/crd; exit 1; }

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

doc: ## Build the API documentation
	$(CARGO) doc $(CARGO_FLAGS) --workspace --no-deps

deps: ## Install the system packages the demo and the data-path tests need (iproute2, iptables)
	scripts/install-deps.sh

demo: deps ## The main job: the whole mesh on this machine, on Istio YAML (needs root)
	$(CARGO) build $(CARGO_FLAGS) --release -p weft-operator -p weft-proxy -p weftctl -p weft-sample-app --bins
	./target/release/weftctl demo

# `make bench BENCH_FLAGS=--quick` for 5 s proxy runs instead of 30 s.
BENCH_FLAGS ?=
BENCH_DIR := target/weft-bench

bench: bench-deps ## Every benchmark in one table: proxy comparison (root), discovery, webhook -> target/weft-bench/summary.md
	$(CARGO) build $(CARGO_FLAGS) --release -p weft-operator -p weft-proxy -p weft-bench --bins
	rm -f $(BENCH_DIR)/proxy-comparison.json $(BENCH_DIR)/proxy-comparison.md
	-./target/release/weft-bench compare --out $(BENCH_DIR) $(BENCH_FLAGS)
	-$(CARGO) bench $(CARGO_FLAGS) -p weft-operator --bench discovery
	-$(CARGO) bench $(CARGO_FLAGS) -p weft-webhook
	./target/release/weft-bench summary --target-dir target

bench-proxy: bench-deps ## Only the proxy comparison: Weft vs HAProxy and nginx pairs (root; BENCH_FLAGS=--quick for 5 s runs)
	$(CARGO) build $(CARGO_FLAGS) --release -p weft-operator -p weft-proxy -p weft-bench --bins
	./target/release/weft-bench compare --out $(BENCH_DIR) $(BENCH_FLAGS)

bench-instructions: bench-deps ## Instructions per request of the sidecar's one-hop path and of the hyper+tokio floor (root, valgrind; steady where req/s drifts)
	$(CARGO) build $(CARGO_FLAGS) --release -p weft-proxy -p weft-bench --bins
	scripts/proxy-instructions.sh target/release

bench-summary: ## Print the one table from the results already in target/ (no benchmark is run)
	$(CARGO) run $(CARGO_FLAGS) --release -q -p weft-bench -- summary --target-dir target

bench-criterion: ## Every crate's criterion benchmarks (cargo bench --workspace)
	$(CARGO) bench $(CARGO_FLAGS) --workspace

bench-deps: ## Install what the proxy comparison needs: haproxy, nginx (apt) and oha (cargo install, pinned)
	scripts/install-bench-deps.sh

OPERATOR_IMAGE ?= ghcr.io/weft-mesh/weft-operator:latest
PROXY_IMAGE ?= ghcr.io/weft-mesh/weft-proxy:latest
BUNDLE_IMAGE ?= ghcr.io/weft-mesh/weft-operator-bundle:latest

bundle: ## Regenerate config/rbac/role.yaml, config/webhook/manifests.yaml and the OLM bundle (bundle/, bundle.Dockerfile)
	$(CARGO) run $(CARGO_FLAGS) -q -p weft-install --bin weft-bundle

bundle-check: ## Fail when the generated install files or the OLM bundle are out of date or break an OLM rule
	$(CARGO) run $(CARGO_FLAGS) -q -p weft-install --bin weft-bundle -- --check

images: ## Build the operator and proxy images (Docker with BuildKit)
	docker build -f images/operator.Dockerfile -t $(OPERATOR_IMAGE) .
	docker build -f images/proxy.Dockerfile -t $(PROXY_IMAGE) .

bundle-image: bundle-check ## Build the OLM bundle image
	docker build -f bundle.Dockerfile -t $(BUNDLE_IMAGE) .

# `make run` needs the CRDs, the weft-system namespace and config/webhook applied, and no operator
# running in the cluster; WEBHOOK_HOST must be a DNS name of this machine the API server resolves.
WEBHOOK_HOST ?= $(shell hostname -f)
run: ## Run the operator outside the cluster against KUBECONFIG, webhooks reachable by URL (development)
	$(CARGO) run $(CARGO_FLAGS) -p weft-operator -- --namespace weft-system \
	  --webhook-url https://$(WEBHOOK_HOST):9443 --state-dir $(CURDIR)/target/weft-operator-run

clean:
	$(CARGO) clean
