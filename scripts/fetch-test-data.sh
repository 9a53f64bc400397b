#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer test vocabularies (GGUF vocab files with reference
# tokenizations, *.inp/*.out) into $PIPESPEC_HOME/testdata/llama.cpp-vocab/.
# They ship inside the llama-cpp-python source distribution, so pip can download them.
# Idempotent: does nothing when every file is already there.
set -euo pipefail

version=0.3.36
home="${PIPESPEC_HOME:-${HOME:?set PIPESPEC_HOME or HOME}/.cache/pipespec}"
dest="$home/testdata/llama.cpp-vocab"
vocabs=(llama-spm llama-bpe qwen2 gpt-2)

files=()
for vocab in "${vocabs[@]}"; do
    for suffix in "" .inp .out; do
        files+=("ggml-vocab-$vocab.gguf$suffix")
    done
done

missing=0
for file in "${files[@]}"; do
    [[ -s "$dest/$file" ]] || missing=1
done
if [[ $missing == 0 ]]; then
    echo "fetch-test-data: vocabularies already in $dest"
    exit 0
fi

mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-test-data: downloading the llama-cpp-python $version source distribution with pip"
# --no-binary for this one package only: `:all:` would also build its build tools from source.
python3 -m pip download --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$version" -d "$tmp/download"

# Extract into a temporary folder beside the destination, then rename each file into place,
# so an interrupted run never leaves a truncated file under its final name.
python3 - "$tmp/download" "$dest" "${files[@]}" <<'PY'
import glob, os, sys, tarfile, tempfile

download, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
archives = glob.glob(os.path.join(download, "llama_cpp_python-*.tar.gz"))
if len(archives) != 1:
    sys.exit(f"fetch-test-data: expected one llama_cpp_python-*.tar.gz in {download}, found {archives}")
wanted = set(names)
staging = tempfile.mkdtemp(dir=dest, prefix=".staging-")
found = {}
try:
    with tarfile.open(archives[0]) as archive:
        for member in archive:
            parts = member.name.split("/")
            if (member.isfile() and parts[-1] in wanted
                    and parts[1:-1] == ["vendor", "llama.cpp", "models"]):
                source = archive.extractfile(member)
                path = os.path.join(staging, parts[-1])
                with open(path, "wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                found[parts[-1]] = path
    missing = sorted(wanted - found.keys())
    if missing:
        sys.exit(f"fetch-test-data: {archives[0]} lacks {', '.join(missing)}")
    for name, path in found.items():
        os.replace(path, os.path.join(dest, name))
finally:
    for leftover in os.listdir(staging):
        os.remove(os.path.join(staging, leftover))
    os.rmdir(staging)
print(f"fetch-test-data: {len(found)} files in {dest}")
PY
