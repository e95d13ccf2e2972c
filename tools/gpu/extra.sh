#!/usr/bin/env bash
# Gathers what a lent GPU run needs beside the build into .gpu-extra/ (git-ignored; about 4 MB, carried by the first
# device call): the oracles and ../shared/gpu's peers, export script and stand-in vocabulary.
#
#   tools/gpu/extra.sh [SHARED_DIR]      # default ../shared
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${1:-../shared}
rm -rf .gpu-extra && mkdir .gpu-extra
cp "$shared"/oracles/{embed-public.json,bertscore-public.json} "$shared"/gpu/{peers.py,export_models.py,minilm-vocab.txt} .gpu-extra/
du -sh .gpu-extra
