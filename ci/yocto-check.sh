#!/usr/bin/env bash
# Checks the Yocto layer without bitbake (a full build is not possible here; see the README):
#   - the recipe's crate list is Cargo.lock's (ci/yocto-crates.py --check);
#   - the kernel fragment is the list `berth check-config` checks;
#   - a structural check: layer.conf's variables, every file:// and require a recipe names exists;
#   - oelint-adv (PyPI, installed into $BERTH_CI_CACHE/oelint): no errors.
#   ci/yocto-check.sh path/to/berth
set -euo pipefail
BERTH="$(realpath "${1:?usage: yocto-check.sh path/to/berth}")"
cd "$(dirname "$0")/.."
L=yocto-layer
python3 ci/yocto-crates.py --check
diff -u "$L/recipes-kernel/linux/files/berth.cfg" <("$BERTH" check-config --fragment) \
  || { echo "yocto-check: berth.cfg differs from \`berth check-config --fragment\`: regenerate it" >&2; exit 1; }
echo "yocto-check: the kernel fragment is check-config's list ($(grep -c '^CONFIG_' "$L/recipes-kernel/linux/files/berth.cfg") options)"

python3 - "$L" <<'PY'
import pathlib, re, sys
layer = pathlib.Path(sys.argv[1])
problems = []
conf = (layer / "conf/layer.conf").read_text()
for var in ["BBPATH", "BBFILES", "BBFILE_COLLECTIONS", "BBFILE_PATTERN_berth", "BBFILE_PRIORITY_berth", "LAYERSERIES_COMPAT_berth", "LAYERDEPENDS_berth"]:
    if not re.search(rf"^{var}\s*[+:.?]*=", conf, re.M):
        problems.append(f"conf/layer.conf: {var} is not set")
recipes = sorted(layer.glob("recipes-*/*/*.bb")) + sorted(layer.glob("recipes-*/*/*.bbappend"))
if not recipes:
    problems.append("no recipes")
for r in recipes:
    text = r.read_text()
    for name in re.findall(r"file://([A-Za-z0-9_.\-/]+)", text):
        if not (r.parent / "files" / name).exists():
            problems.append(f"{r.relative_to(layer)}: file://{name} is not in {r.parent.relative_to(layer)}/files")
    for inc in re.findall(r"^require\s+(\S+)", text, re.M):
        if not (r.parent / inc).exists():
            problems.append(f"{r.relative_to(layer)}: require {inc}: no such file")
    for board in re.findall(r'^BERTH_BOARD\s*\??=\s*"([^"]+)"', text, re.M):
        if not (layer.parent / "board-support/profiles" / f"{board}.toml").exists():
            problems.append(f"{r.relative_to(layer)}: BERTH_BOARD {board}: no board-support/profiles/{board}.toml")
    if r.suffix == ".bb":
        for var in ["SUMMARY", "LICENSE"]:
            if not re.search(rf"^{var}\s*=", text, re.M):
                problems.append(f"{r.relative_to(layer)}: {var} is not set")
for p in problems:
    print("yocto-check:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"yocto-check: structure ok ({len(recipes)} recipes and appends)")
PY

OELINT="${BERTH_CI_CACHE:-/var/cache/berth-ci}/oelint"
if [ ! -d "$OELINT/oelint_adv" ]; then
  python3 -m pip --version >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  python3 -m pip install -q --disable-pip-version-check --target "$OELINT" oelint-adv 2>&1 | grep -v 'Running pip as' || true
fi
# The homepage check pings the network: not a property of the layer.
out="$(cd "$L" && PYTHONPATH="$OELINT" python3 -m oelint_adv --quiet --hide info --suppress oelint.vars.homepageping \
  $(find . -name '*.bb' -o -name '*.bbappend' | sort) 2>&1 || true)"
[ -z "$out" ] || echo "$out"
if echo "$out" | grep -q ':error:'; then
  echo "yocto-check: oelint-adv found errors" >&2
  exit 1
fi
echo "yocto-check: oelint-adv: no errors ($(echo "$out" | grep -c ':warning:' || true) warnings)"
