# agentready: every target bootstraps the virtual environment itself (uv, from uv.lock).
SHELL := /bin/bash
.DEFAULT_GOAL := help
SYNCED := .venv/.synced
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help dev demo test lint format schemas clean bench bench-quick bench-compare livekit-server livekit-server-optional web
# The browser client and demo page (web/): rebuilt by dev and test when a source is newer than web/dist.
WEB_BUILT := web/dist/index.html
WEB_SOURCES := $(wildcard web/package.json web/package-lock.json web/index.html web/vite.config.ts web/tsconfig.json) \
	$(shell find web/src -type f 2>/dev/null)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --user 'uv>=0.9,<1'

$(SYNCED): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

dev: $(SYNCED) livekit-server-optional $(WEB_BUILT) ## start the whole stack (embedded Redis/PostgreSQL, the real LiveKit server or its simulator)
	$(UV) run python -m devstack $(DEV_ARGS)

demo: $(SYNCED) ## 200 simulated frontends (50 at once) against the stack, started if none runs; DEMO_ARGS="-n 20 -c 5"
	$(UV) run python -m devstack.demo $(DEMO_ARGS)

test: $(SYNCED) livekit-server-optional $(WEB_BUILT) ## run the test suite on real Redis, PostgreSQL and LiveKit (simulator where no Go)
	$(UV) run pytest $(PYTEST_ARGS)

web: ## build the TypeScript client and the demo page into web/dist (npm ci, then vite)
	@if command -v npm >/dev/null 2>&1; then \
		cd web && npm ci --no-audit --no-fund && npm run build; \
	else echo "make web: skipped: node/npm not found (web/dist serves /demo and the browser test in tests/web)"; fi

$(WEB_BUILT): $(WEB_SOURCES)
	@$(MAKE) --no-print-directory web

livekit-server: $(SYNCED) ## build the pinned livekit-server from its Go module into ~/.cache/agentready (once)
	$(UV) run python -m devstack.livekit_build

livekit-server-optional: $(SYNCED)
	@$(UV) run python -m devstack.livekit_build --optional

lint: $(SYNCED) ## ruff (lint + format check) and mypy --strict
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

format: $(SYNCED) ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench: $(SYNCED) ## benchmark: API vs ceiling vs polling baseline, end to end, burst of 10,000, real LiveKit (~15-20 min; report in bench/results/)
	$(UV) run python -m bench $(BENCH_ARGS)

bench-quick: $(SYNCED) ## the same benchmark, short (under 4 minutes)
	$(UV) run python -m bench --quick $(BENCH_ARGS)

REF ?= HEAD~1
bench-compare: $(SYNCED) ## quick benchmark of REF (default HEAD~1, own worktree and uv env), then of the working tree; the change of each key figure
	$(UV) run python -m bench compare --ref $(REF) $(BENCH_ARGS)

schemas: $(SYNCED) ## regenerate contracts/schemas after changing an event model
	$(UV) run python -m contracts.export_schemas

clean: ## remove the virtual environment and local dev data
	rm -rf .venv .devdata
