# securenfs: the two commands that work on a fresh Debian 12 machine.
#   make demo   set everything up and run the server on an embedded default, showing it answer
#   make test   set everything up and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-interop bench lint clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-interop: setup
	$(PY) -m pytest -m interop $(PYTEST_ARGS)

bench: setup
	$(PY) bench/rpc_null.py

# mypy --strict covers the packages that are clean today; add a package once it is.
STRICT_PACKAGES := securenfs.xdr securenfs.acl securenfs.rpc securenfs.rpcsec_gss securenfs.gsscrypto \
	securenfs.state securenfs.locking securenfs.recovery securenfs.exports securenfs.vfs \
	securenfs.client securenfs.admin idmap preflight keytabs

lint: setup
	$(PY) -m ruff check securenfs idmap preflight keytabs tests bench scripts
	$(PY) -m mypy --strict $(addprefix -p ,$(STRICT_PACKAGES))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-state
