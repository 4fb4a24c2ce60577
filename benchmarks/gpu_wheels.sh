#!/usr/bin/env bash
# Fetch the wheels benchmarks/gpu.sh needs on a GPU machine without internet whose Python
# (3.12 with torch, timm, transformers, scikit-learn, matplotlib) lacks the rest of this
# package's dependencies: soundfile and the notebook stack (papermill, nbformat, ipykernel)
# with what they need. Run it on a machine with internet, in the checkout; the wheels land
# in .whl/, which gpu.sh installs into /tmp/site before its phases. Keep .whl/ out of git
# (`echo /.whl/ >> .git/info/exclude`).
#
#   benchmarks/gpu_wheels.sh [PYTHON_VERSION]      (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-3.12}
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$tag")
done
python3 -m pip download -q --only-binary=:all: --python-version "$VERSION" \
    --implementation cp "${PLATFORMS[@]}" -d .whl soundfile papermill nbformat ipykernel
# What the GPU image already holds keeps its own version there (a second copy in /tmp/site
# would shadow it: numpy under torch, say).
for name in numpy packaging psutil pyyaml requests urllib3 idna certifi charset_normalizer \
    click attrs tqdm typing_extensions python_dateutil pygments; do
    rm -f .whl/"$name"-[0-9]*.whl
done
du -sh .whl
