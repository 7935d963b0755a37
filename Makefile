# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers, one more than the two cores: the module that boots systemd spends most of
# its minute waiting on real time (a watchdog period, a Retry-After), and the third worker keeps
# both cores on the other tests meanwhile (2 workers: 152 and 155 s; 3: 134 and 129 s)
TEST_WORKERS ?= 3

# Downloads the tests need are cached here, outside the repository (tests/tools.py reads it).
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/moment-sync
PROMETHEUS := $(CACHE)/prometheus
PROMTOOL := $(PROMETHEUS)/usr/bin/promtool
# Litestream v0.3.13, as Fly.io ships it in an npm package (npm checks the registry's sha512;
# the sha1 below pins the exact tarball)
LITESTREAM_PKG := @flydotio/litestream-linux-x64@1.0.1
LITESTREAM_SHA1 := 68acc68bf74841e778b1841cda5d113ba7a9248e
LITESTREAM_DIR := $(CACHE)/litestream-linux-x64-1.0.1
LITESTREAM := $(LITESTREAM_DIR)/litestream

.PHONY: venv run test test-tools systemd-test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/moment-sync demo

test: $(STAMP) test-tools
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Real components some tests run, fetched once into the cache.
test-tools: $(PROMTOOL) $(LITESTREAM)

$(LITESTREAM):
	mkdir -p $(LITESTREAM_DIR)
	cd $(LITESTREAM_DIR) && rm -f *.tgz && npm pack --silent $(LITESTREAM_PKG) >/dev/null \
		&& echo "$(LITESTREAM_SHA1)  flydotio-litestream-linux-x64-1.0.1.tgz" | sha1sum -c --quiet \
		&& tar xzf flydotio-litestream-linux-x64-1.0.1.tgz --strip-components=1 package/litestream \
		&& rm flydotio-litestream-linux-x64-1.0.1.tgz
	$(LITESTREAM) version

# Prometheus and promtool come from Debian's prometheus package, unpacked into the cache (not
# installed: no service starts, nothing outside it changes); apt's package lists are refreshed
# first when they lack it and we are root. When it cannot be had the Prometheus tests skip,
# saying why.
$(PROMTOOL):
	@mkdir -p $(PROMETHEUS)
	@cd $(PROMETHEUS) && rm -f prometheus_*.deb && \
	  { apt-get download prometheus >/dev/null 2>&1 || \
	    { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && \
	      apt-get download prometheus >/dev/null 2>&1; }; } && \
	  dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb && \
	  echo "unpacked Debian's prometheus package into $(PROMETHEUS)" || \
	  echo "could not fetch Debian's prometheus package (apt-get download prometheus): the Prometheus tests will skip"

# the units under a real systemd: a Debian 12 machine booted with systemd-nspawn (root; the
# Debian root and the wheels are cached in ~/.cache/moment-sync). `make test` runs it too.
systemd-test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:randomly tests/systemd

lint: $(STAMP)
	$(BIN)/ruff check daemon tests bench
	$(BIN)/mypy --strict daemon tests
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
