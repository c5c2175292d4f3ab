#!/usr/bin/env bash
# Install the Debian packages voxtrain needs on this machine, only those that are missing:
# espeak-ng, sox, ffmpeg (speech audio for tests and the validator/trainer), the PostgreSQL server,
# Java and Maven (Kafka's jars), CMU's acoustic-model tools for adapting the en-US model to customer
# audio (sphinxtrain: bw, mllr_solve, map_adapt, mk_s2sendump; sphinxbase-utils: sphinx_fe; pocketsphinx:
# pocketsphinx_mdef_convert; pocketsphinx-en-us: the model they were built for), and chromium (the console's browser tests drive /usr/bin/chromium;
# Playwright never downloads a browser). Non-interactive; needs root (or passwordless sudo) only when
# something is missing. Go (for MinIO) is checked by `voxtrain-stack install`, not installed here:
# Debian's golang-go is too old.
set -euo pipefail

missing=()
for cmd in espeak-ng sox ffmpeg java mvn; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    case "$cmd" in
      java) missing+=(openjdk-17-jre-headless) ;;
      mvn) missing+=(maven) ;;
      *) missing+=("$cmd") ;;
    esac
  fi
done
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/lib/sphinxtrain/bw ] || missing+=(sphinxtrain)
command -v sphinx_fe >/dev/null 2>&1 || missing+=(sphinxbase-utils)
command -v pocketsphinx_mdef_convert >/dev/null 2>&1 || missing+=(pocketsphinx)
[ -d /usr/share/pocketsphinx/model/en-us ] || missing+=(pocketsphinx-en-us)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-system-packages: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "install-system-packages: these Debian packages are missing: ${missing[*]}" >&2
  echo "  install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq </dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
