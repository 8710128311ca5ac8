# securenfs: the two commands that work on a fresh Debian 12 machine.
#   make demo   set everything up and run the server on an embedded default, showing it answer
#   make test   set everything up and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-interop fuzz fuzz-corpus bench lint clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-interop: setup
	$(PY) -m pytest -m interop $(PYTEST_ARGS)

# The fuzzer's long run (before a release): FUZZ_CALLS mutated calls per seed, FUZZ_SEEDS seeds.
FUZZ_CALLS ?= 200000
FUZZ_GSS_CALLS ?= 20000
FUZZ_SEEDS ?= 1 2 3
fuzz: setup
	for s in $(FUZZ_SEEDS); do \
		SECURENFS_FUZZ_SEED=$$s SECURENFS_FUZZ_CALLS=$(FUZZ_CALLS) SECURENFS_FUZZ_GSS_CALLS=$(FUZZ_GSS_CALLS) \
			$(PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_fuzz.py $(PYTEST_ARGS) || exit 1; \
	done

# Rewrite the stored seed corpus (tests/support/fuzz_seeds.txt) from tests/support/fuzz.py.
fuzz-corpus: setup
	$(PY) -m tests.support.fuzz

bench: setup
	$(PY) bench/rpc_null.py

# mypy --strict covers the packages that are clean today; add a package once it is.
STRICT_PACKAGES := securenfs.xdr securenfs.acl securenfs.rpc securenfs.rpcsec_gss securenfs.gsscrypto \
	securenfs.state securenfs.locking securenfs.recovery securenfs.exports securenfs.vfs \
	securenfs.client securenfs.admin securenfs.proto idmap preflight keytabs

lint: setup
	$(PY) -m ruff check securenfs idmap preflight keytabs tests bench scripts
	$(PY) -m mypy --strict $(addprefix -p ,$(STRICT_PACKAGES))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-state
