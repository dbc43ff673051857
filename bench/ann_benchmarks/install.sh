#!/usr/bin/env bash
# Put vecsearch into an ann-benchmarks checkout (https://github.com/erikbern/ann-benchmarks):
#   bench/ann_benchmarks/install.sh /path/to/ann-benchmarks
# copies Dockerfile, config.yml and module.py of this directory to
# <checkout>/ann_benchmarks/algorithms/vecsearch/ and builds this repository's wheel into its
# wheels/ folder (what the Dockerfile installs). Steps after it: README.md beside this file.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1/run.py" ] || [ ! -d "$1/ann_benchmarks/algorithms" ]; then
    echo "usage: $0 /path/to/ann-benchmarks-checkout (the folder with run.py)" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="$1/ann_benchmarks/algorithms/vecsearch"
mkdir -p "$target/wheels"
cp "$here/Dockerfile" "$here/config.yml" "$here/module.py" "$target/"
rm -f "$target"/wheels/vecsearch-*.whl
python3 -m pip wheel --quiet --no-deps --wheel-dir "$target/wheels" "$repo"
echo "vecsearch installed as an ann-benchmarks algorithm in $target:"
ls "$target" "$target/wheels"
