#!/usr/bin/env bash
# Builds the folder that tools/gpu/measure.py runs on a GPU machine (which has no .NET): Api.Front, Silo.Gpu and
# Bench, self-contained, with ONNX Runtime's CUDA provider, and a copy of ICU in icu/ for machines without libicu.
#
#   tools/gpu/publish.sh /tmp/pub && ../shared/gpu/stage.sh /tmp/pub
set -euo pipefail
out=${1:?usage: publish.sh OUT_DIR}
cd "$(dirname "$0")/../.."
rm -rf "$out"
for project in Api.Front Silo.Gpu Bench; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained -p:OnnxRuntimeFlavor=cuda -o "$out" --nologo -v quiet
done
# Not used at run time; TensorRT is not among our execution providers.
rm -f "$out"/*.pdb "$out"/libonnxruntime_providers_tensorrt.so
mkdir -p "$out/icu"
cp -L /usr/lib/x86_64-linux-gnu/libicu{uc,i18n,data}.so.[0-9][0-9] "$out/icu/"
du -sh "$out"
