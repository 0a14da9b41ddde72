# portmatrix: the two commands a newcomer needs are `make demo` and `make test`;
# both do all set-up on a fresh machine first (scripts/setup.sh, idempotent).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# Every recipe's shell reads the project environment (venv, podman socket,
# ansible.cfg) from the one file that defines it.
export BASH_ENV := $(CURDIR)/scripts/env.sh

TARGET  := x86_64-unknown-linux-musl
# Every crate under modules/ with a src/main.rs is an Ansible module.
MODULES := $(patsubst modules/%/src/main.rs,%,$(wildcard modules/*/src/main.rs))

.PHONY: all setup library test molecule unit demo bench lint clean

all: library

setup:
	bash scripts/setup.sh

# Static, size-tuned module binaries (see [profile.release]) into Ansible's
# module path. Phony: the folder `library` exists and holds the docs.
library:
	cargo build --release --locked --target $(TARGET) $(addprefix -p ,$(MODULES))
	for m in $(MODULES); do install -m 0755 target/$(TARGET)/release/$$m library/$$m; done

# The whole suite: cargo's tests (unit and property tests, protocol tests,
# kernel tests in private network namespaces, container tests through
# ansible-playbook), then every Molecule scenario; see scripts/test.sh.
test: setup library
	bash scripts/test.sh

# One Molecule scenario, kept after the run for a look inside:
#   make molecule SCENARIO=default   (then: molecule login -s default -h pm-default-master;
#   molecule destroy -s default)
SCENARIO ?= default
molecule: setup library
	molecule test -s $(SCENARIO) --destroy never

# Only the crates' own unit tests: seconds, no containers or namespaces.
unit:
	cargo test --workspace --locked --lib --bins

demo: setup library
	bash scripts/demo.sh

bench: setup library
	bash benches/reserved_ports.sh
	bash benches/open_ports.sh
	bash benches/unit_bindings.sh
	bash benches/dcos_ports.sh

# The checks that run on every change, each reported by name, all of them run
# even when one fails: rustfmt, clippy, shellcheck, yamllint, ansible-lint
# (scripts/lint.sh; configs .yamllint and .ansible-lint).
lint: setup
	bash scripts/lint.sh

clean:
	cargo clean
	rm -f $(addprefix library/,$(MODULES))
