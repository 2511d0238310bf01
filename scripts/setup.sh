#!/usr/bin/env bash
# Installs every Debian package that vmctl's build, tests and runtime need, then the browser
# test's npm packages. Idempotent: on a machine that already has them it only checks and returns
# in seconds. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  cmake ninja-build g++ pkg-config clang-format ccache
  libboost1.81-dev libssl-dev libssh-dev libsqlite3-dev nlohmann-json3-dev libfmt-dev
  libspdlog-dev libcli11-dev libgtest-dev libgmock-dev libyaml-cpp-dev
  libnl-3-dev libnl-route-3-dev libnftables-dev libarchive-dev xfsprogs
  libtcmalloc-minimal4
  # fuzz build (make fuzz): clang and its sanitizer and libFuzzer runtimes
  clang libclang-rt-dev
  # runtime: VMM, disks, guest image build
  qemu-system-x86 qemu-utils e2fsprogs mmdebstrap busybox-static xz-utils zstd kmod cpio
  dpkg-dev ca-certificates
  # bundled into images without their own sshd (with its libraries, relinked by patchelf)
  openssh-server patchelf
  # lvm-thin volume backend (its live test runs them inside a VM)
  lvm2 thin-provisioning-tools
  # runtime: network; tests and benchmarks
  nftables iproute2 openssh-client socat sqlite3 procps curl iperf3 iputils-ping
  # tests: a real SMTP server for registration by verification mail
  python3-aiosmtpd
  # tests: the HTTPS proxy against a real ACME server (pebble, its challenge responder) and a real
  # DNS server for DNS-01 (knot, with knsupdate/kdig); benchmark peers (wrk, nginx); the browser
  pebble knot knot-dnsutils wrk nginx-light chromium nodejs
  # the browser test: certutil, to make Chromium trust the daemon's local CA
  libnss3-tools
)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done

  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#packages[@]} packages present"
    return
  fi

  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root: sudo $0" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "setup: done"
}

# playwright-core for tests/browser (tests/e2e/browser_test.cc), exactly as package-lock.json
# pins it, into its gitignored node_modules. A copy of the lock file there says what is installed,
# so a second run costs a comparison.
install_browser_test_packages() {
  local dir=tests/browser
  local stamp=$dir/node_modules/.vmctl-installed-lock.json
  if cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "setup: npm packages of $dir present"
    return
  fi
  echo "setup: npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
}

install_packages
install_browser_test_packages
