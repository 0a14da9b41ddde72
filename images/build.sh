#!/usr/bin/env bash
# Build the test node images from Debian packages: mmdebstrap makes a root
# filesystem tarball, `podman import` turns it into an image. No registry is
# involved (none is reachable from these machines).
#
#   localhost/portmatrix-node:bookworm           systemd + python3 + nftables,
#                                                iptables, iproute2, procps
#   localhost/portmatrix-node-nopython:bookworm  the same without python3 (binary
#                                                modules need no Python)
#   localhost/portmatrix-node-legacy:bookworm    the node image with iptables
#                                                switched to iptables-legacy, like
#                                                CentOS 7 (molecule/legacy-iptables),
#                                                and Debian's iptables-persistent
#                                                (netfilter-persistent.service)
#   localhost/portmatrix-node-firewalld:bookworm the Python image with firewalld, enabled
#                                                as Debian installs it (nftables backend)
#
# Both boot systemd: the image's default command is /sbin/init and its stop
# signal SIGRTMIN+3. Run them with NET_ADMIN + SYS_ADMIN and
# --security-opt unmask=/proc/sys (see tests/support/container.rs).
#
# mmdebstrap gets no mirror argument: it uses Debian's default archive names,
# which resolve to whatever this machine is set up to reach.
#
# An image that exists and carries the label of this recipe is left alone; one
# built by an older recipe (this file changed) is rebuilt. --rebuild forces it.
#
# Usage: images/build.sh [--rebuild] [IMAGE...]   (IMAGE: node, node-nopython, node-legacy, node-firewalld)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${HERE}/containers.conf}"

say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }

SUITE=bookworm
PREFIX=localhost/portmatrix-
# The packages every node has; systemd-sysv provides /sbin/init.
BASE_PACKAGES=systemd,systemd-sysv,dbus,nftables,iptables,iproute2,procps
declare -A EXTRA_PACKAGES=(
    [node]=python3
    [node-nopython]=""
    [node-legacy]="python3,iptables-persistent"
    [node-firewalld]="python3,firewalld"
)
# Answers for packages' questions, set before any package is installed:
# iptables-persistent would otherwise save the firewall it sees while being
# installed, which is the build machine's own.
# shellcheck disable=SC2016
declare -A ESSENTIAL_HOOKS=(
    [node]=""
    [node-nopython]=""
    [node-firewalld]=""
    [node-legacy]='printf "%s\n" "iptables-persistent iptables-persistent/autosave_v4 boolean false" "iptables-persistent iptables-persistent/autosave_v6 boolean false" | chroot "$1" debconf-set-selections'
)
# A second customize hook, for the images that differ by more than packages
# (mmdebstrap runs it with the new root as $1: single quotes on purpose).
# shellcheck disable=SC2016
declare -A EXTRA_HOOKS=(
    [node]=""
    [node-nopython]=""
    [node-firewalld]=""
    [node-legacy]='chroot "$1" update-alternatives --set iptables /usr/sbin/iptables-legacy && chroot "$1" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy'
)
ALL_IMAGES=(node node-nopython node-legacy node-firewalld)

REBUILD=0
IMAGES=()
for arg in "$@"; do
    case "$arg" in
        --rebuild) REBUILD=1 ;;
        -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        node|node-nopython|node-legacy|node-firewalld) IMAGES+=("$arg") ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done
[ "${#IMAGES[@]}" -gt 0 ] || IMAGES=("${ALL_IMAGES[@]}")

for tool in mmdebstrap podman; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh (it installs it)"
done

# Runs inside mmdebstrap after the packages are installed (masks units that
# cannot work in a container).
CUSTOMIZE="${HERE}/customize-node.sh"
# Identifies this recipe: a change to this file or the hook rebuilds the images.
RECIPE="$(cat "${BASH_SOURCE[0]}" "$CUSTOMIZE" | sha256sum | cut -c1-16)"

# Slimmer images: no manuals, translations or docs (copyright files stay).
DPKG_OPTS=(
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
)

WORK=""
cleanup() { if [ -n "$WORK" ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
WORK="$(mktemp -d /tmp/portmatrix-images.XXXXXX)"

build() {
    local name="$1" image="${PREFIX}$1:${SUITE}"
    local have old_id
    have="$(podman image inspect --format '{{ index .Labels "portmatrix.recipe" }}' "$image" 2>/dev/null || true)"
    old_id="$(podman image inspect --format '{{ .Id }}' "$image" 2>/dev/null || true)"
    if [ "$REBUILD" = 0 ] && [ "$have" = "$RECIPE" ]; then
        say "$image present"
        return
    fi
    if [ -n "$have" ] && [ "$have" != "$RECIPE" ] && [ "$REBUILD" = 0 ]; then
        say "$image was built by another recipe ($have); rebuilding"
    fi

    local hooks=(--customize-hook="$CUSTOMIZE")
    if [ -n "${EXTRA_HOOKS[$name]}" ]; then hooks+=(--customize-hook="${EXTRA_HOOKS[$name]}"); fi
    if [ -n "${ESSENTIAL_HOOKS[$name]}" ]; then hooks+=(--essential-hook="${ESSENTIAL_HOOKS[$name]}"); fi
    local packages="$BASE_PACKAGES${EXTRA_PACKAGES[$name]:+,${EXTRA_PACKAGES[$name]}}"
    local tar="${WORK}/${name}.tar" log="${WORK}/${name}.log" start=$SECONDS
    say "building $image (mmdebstrap $SUITE: $packages)"
    if ! mmdebstrap --variant=apt --include="$packages" "${DPKG_OPTS[@]}" \
        "${hooks[@]}" \
        "$SUITE" "$tar" </dev/null >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "mmdebstrap failed for $image (last lines above)"
    fi

    # The Python-less image must really have no Python.
    # (grep without -q: it must read the whole listing, or tar dies of SIGPIPE
    # and pipefail turns a match into a failure.)
    if [ -z "${EXTRA_PACKAGES[$name]}" ] \
        && tar -tf "$tar" | grep -E '^(\./)?usr/bin/python3(\.[0-9]+)?$' >/dev/null; then
        die "$image would contain python3; some package pulled it in"
    fi

    local new_id
    new_id="$(podman import --quiet \
        --change 'CMD ["/sbin/init"]' \
        --change 'STOPSIGNAL SIGRTMIN+3' \
        --change "LABEL portmatrix.recipe=${RECIPE}" \
        --message "portmatrix ${name} (${SUITE}, ${packages})" \
        "$tar" "$image")" || die "podman import failed for $image"
    rm -f "$tar"
    # The image this one replaces (now untagged), unless a container still uses it.
    if [ -n "$old_id" ] && [ "sha256:${old_id#sha256:}" != "sha256:${new_id#sha256:}" ]; then
        podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
    say "built $image in $((SECONDS - start)) s"
}

# The builds run side by side (each is half downloads and dpkg I/O); a failed
# one has already said why.
pids=()
for name in "${IMAGES[@]}"; do
    build "$name" &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
[ "$failed" = 0 ] || die "some image failed to build"
