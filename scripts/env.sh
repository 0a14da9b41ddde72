# shellcheck shell=bash
# Environment for working on portmatrix: `source scripts/env.sh` (from any
# directory). This file is the ONE place that defines these values;
# scripts/setup.sh and .ci/run source it, and the Makefile exports the same
# values (keep them in step if you change one here).
#
#   PATH             the project's virtualenv (.venv/bin: ansible, molecule) first
#   CONTAINERS_CONF  images/containers.conf, for every podman command: it turns
#                    off podman's default ulimits, which these machines cannot
#                    apply (no CAP_SYS_RESOURCE)
#   DOCKER_HOST      podman's Docker-compatible API socket, started by
#                    scripts/setup.sh; testcontainers (tests/support/container.rs)
#                    talks to it
#   ANSIBLE_CONFIG   the repo's ansible.cfg (library = library, roles_path = roles)

PORTMATRIX_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PORTMATRIX_ROOT
case "${PATH}" in
    "${PORTMATRIX_ROOT}/.venv/bin:"*) ;;  # already first: sourcing twice is harmless
    *) export PATH="${PORTMATRIX_ROOT}/.venv/bin:${PATH}" ;;
esac
export CONTAINERS_CONF="${PORTMATRIX_ROOT}/images/containers.conf"
export DOCKER_HOST="unix:///run/podman/podman.sock"
export ANSIBLE_CONFIG="${PORTMATRIX_ROOT}/ansible.cfg"
