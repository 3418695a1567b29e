#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the browser tests, once.
# No browser download from anywhere else: these come from the distribution's archive.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "browser tests need chromium and chromium-driver: run 'sudo apt-get install chromium chromium-driver'" >&2
  exit 1
fi
echo "installing chromium and chromium-driver from Debian..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
