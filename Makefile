# Two commands do everything on a fresh Debian machine (as root):
#   make rehearsal   set up (venv, Docker engine, images) and run the full local rollout rehearsal
#   make test        set up and run every test suite
SHELL := /bin/bash
PYTHON ?= python3
INVENTORY ?= inventories/local
# The venv is keyed by the pinned requirements, so a cached one is reused only while the pins are the same.
REQ_HASH := $(shell cat requirements.txt router_app/requirements.txt | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/msgroute-rollout/venv-$(REQ_HASH)
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=

.PHONY: test-tools venv venv-path prepare rehearsal test lint sanity unit promtool monitoring redis integration molecule clean-venv dashboards readme-report

venv: $(VENV)/.installed

# msgroute.rollout resolves from a checkout (ansible.cfg's collections_path, tests/conftest.py) through this
# link to the checkout, made here and never tracked: git tracking it fails ansible-test sanity's symlinks test.
COLLECTION_LINK := collections/ansible_collections/msgroute/rollout
venv: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	mkdir -p $(@D)
	ln -sfn ../../.. $@

$(VENV)/.installed: requirements.txt router_app/requirements.txt
	@echo "== creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

venv-path:
	@echo $(VENV)

prepare: venv
	ansible-playbook -i $(INVENTORY) playbooks/prepare.yml

rehearsal: prepare
	ansible-playbook -i $(INVENTORY) playbooks/rehearsal.yml

# Debian packages the tests run for real: redis-server (idempotency shared by two engines), chromium (the report
# page opened offline) and promtool from prometheus (`promtool test rules` of the alert rules; the version the
# local Prometheus image runs; the package's own server is stopped where systemd started it). Installed only
# when missing.
test-tools:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server; }
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus \
	  && { ! command -v systemctl >/dev/null || systemctl disable --now prometheus >/dev/null 2>&1 || true; }; }

lint: venv
	ruff check .
	ruff format --check .
	ansible-lint --offline
	antsibull-changelog lint
	$(MAKE) --no-print-directory sanity

# ansible-test sanity runs on a copy at ansible_collections/msgroute/rollout (tests/sanity/copy-collection.sh),
# each test in its own venv under ~/.ansible/test/venv pinned by ansible-core: those are created once, online,
# with the venv (tests/sanity/prime-venvs.sh), so the sanity run itself downloads nothing. The first Python
# in SANITY_PYTHONS runs every test; the others (on PATH) the import and compile tests of the host code.
SANITY_PYTHONS ?= 3.11
# Outside the checkout (inside it, ansible-test would take git's view, which ignores the copy), one per checkout.
SANITY_COPY := $(HOME)/.cache/msgroute-rollout/sanity-$(shell echo $(CURDIR) | sha256sum | cut -c1-8)/ansible_collections/msgroute/rollout
SANITY_PRIMED := $(VENV)/.sanity-primed-$(subst $(eval) ,-,$(SANITY_PYTHONS))

$(SANITY_PRIMED): $(VENV)/.installed tests/sanity/prime-venvs.sh
	@command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends shellcheck; }
	tests/sanity/copy-collection.sh $(SANITY_COPY)
	tests/sanity/prime-venvs.sh $(SANITY_COPY) $(SANITY_PYTHONS)
	touch $@

sanity: venv $(SANITY_PRIMED)
	tests/sanity/copy-collection.sh $(SANITY_COPY)
	cd $(SANITY_COPY) && ansible-test sanity --local --python $(firstword $(SANITY_PYTHONS)) --color no
	cd $(SANITY_COPY) && for python in $(wordlist 2,99,$(SANITY_PYTHONS)); do \
	  ansible-test sanity --local --python $$python --test import --test compile --color no || exit 1; done

# The Grafana dashboards, regenerated from roles/monitoring/files/dashboards/build.py (grafana-foundation-sdk);
# tests/unit/roles/test_dashboards.py fails while the committed JSON differs from what it builds.
dashboards: venv
	python roles/monitoring/files/dashboards/build.py

# README's report example (docs/report-screenshot.png, docs/timeline.png, the summary table) from the real
# rehearsal results in docs/report-example/, rendered by rollout_report and shot in headless Chromium offline
# (Debian's chromium package, as tests/browser needs it; `make test-tools` installs it).
readme-report: venv
	python -m tools.readme_report

unit: venv
	pytest -q tests/unit $(PYTEST_ARGS)

# The alert rules under Prometheus' own unit tests (no container needed).
promtool: venv test-tools
	pytest -q tests/promtool $(PYTEST_ARGS)

# Role monitoring's real Prometheus and Alertmanager on their own names and ports (the images prepare made).
monitoring: prepare
	pytest -q tests/monitoring $(PYTEST_ARGS)

# Role redis's real container under h5redis-* names (image h5redis/redis:test, built by role images from the
# local Debian base prepare made), removed with everything it made at the end.
redis: prepare
	pytest -q tests/redis_role $(PYTEST_ARGS)

integration: prepare
	pytest -q tests/integration $(PYTEST_ARGS)

# The traffic scenario runs an instance of the local Debian base the images role built (the newest one, or
# $MSGROUTE_BASE_IMAGE); the lookup is the tests' own and fails when there is none.
MOLECULE_TRAFFIC = base=$$(python -m tests.support.images) && MSGROUTE_BASE_IMAGE=$$base molecule test -s traffic

molecule: prepare
	molecule test -s router
	$(MOLECULE_TRAFFIC)

test: prepare lint test-tools
	pytest tests/unit tests/browser tests/promtool tests/router_app_integration tests/traffic tests/monitoring tests/redis_role tests/integration tests/e2e $(PYTEST_ARGS)
	molecule test -s router
	$(MOLECULE_TRAFFIC)

clean-venv:
	rm -rf $(VENV)
