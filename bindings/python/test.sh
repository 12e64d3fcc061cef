#!/usr/bin/env bash
# The Python step of tests/run.sh: builds the `ballot` package with pip (maturin
# from the package index as the build backend), installs it into a venv under the
# ignored target/ directory, runs pytest, mypy --strict and mypy's stubtest (the
# stubs against the compiled module), and runs the README's Python example in a
# fresh venv, as a new user would.
#
# Real backends are tested when their BALLOT_TEST_* URLs are set (tests/run.sh
# starts the servers); the local backend always.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV="$ROOT/target/py-venv"

command -v "$PY" >/dev/null || { echo "error: $PY is not installed" >&2; exit 1; }
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
    # Debian splits venv support out of python3.
    echo "installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r bindings/python/requirements-test.txt

WHEELS=$(mktemp -d -t ballot-wheels.XXXXXX)
FRESH=$(mktemp -d -t ballot-fresh-venv.XXXXXX)
trap 'rm -rf "$WHEELS" "$FRESH"' EXIT

# Build once (this is what `pip install ./bindings/python` does), install twice.
"$VENV/bin/python" -m pip wheel -q --no-deps -w "$WHEELS" ./bindings/python
WHEEL=$(ls "$WHEELS"/ballot_election-*.whl)
echo "built $(basename "$WHEEL")"
"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$WHEEL"

cd bindings/python
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider -q -ra --durations=5 tests
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
elif [ $rc -ne 0 ]; then
    exit $rc
fi

echo "mypy --strict examples tests"
"$VENV/bin/python" -m mypy --strict --cache-dir "$ROOT/target/mypy-cache" examples tests

# The stubs are written by hand and checked, not trusted: mypy's stubtest (part of
# the mypy that requirements-test.txt pins) compares _native.pyi and _errors.pyi
# with the compiled module and the classes it makes, names, signatures and all.
echo "stubtest ballot._native ballot._errors"
MYPY_CACHE_DIR="$ROOT/target/mypy-cache" "$VENV/bin/python" -m mypy.stubtest ballot._native ballot._errors

echo "README example in a fresh venv"
"$PY" -m venv "$FRESH/venv"
"$FRESH/venv/bin/python" -m pip install -q "$WHEEL"
"$PY" - "$ROOT/README.md" > "$FRESH/readme_example.py" <<'PYEOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"```python\n(.*?)```", section, re.S)
if not blocks:
    sys.exit("README.md has no python block in its Python section")
print(blocks[0])
PYEOF
(cd "$FRESH" && timeout 60 "$FRESH/venv/bin/python" readme_example.py)
