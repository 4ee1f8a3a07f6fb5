#!/usr/bin/env bash
# Loads every model of the malformed-input corpus (tests/bad/expected.txt: its load and
# ok cases) with `kiln check` under `strace -f -e trace=open,openat,openat2` and fails if
# any file outside the model's own folder was opened, or even tried: the corpus holds
# external data and .npy references that point at /etc/hostname, "..", symlinks and
# folders, and kiln must refuse them from the path alone. The only other files allowed
# are what the dynamic loader and the OpenMP runtime open at startup (shared libraries,
# /etc/ld.so.cache, /sys/devices/system/cpu).
#   tests/bad/strace_corpus.sh KILN_BINARY
set -euo pipefail
kiln=$(realpath "$1")
if ! strace -qq -o /dev/null true 2>/dev/null; then
    echo "strace is missing or cannot trace here (no ptrace permission): skipped"
    exit 77 # ctest's SKIP_RETURN_CODE
fi
cd "$(dirname "$0")"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
models=0 opened=0 bad=0
while read -r kind file _; do
    case "$kind" in load | ok) ;; *) continue ;; esac
    case "$file" in *.onnx | *.kiln) ;; *) continue ;; esac
    dir=$(realpath "$(dirname "$file")")
    strace -f -qq -e trace=open,openat,openat2 -o "$log" "$kiln" check "$file" >/dev/null 2>&1 || true
    models=$((models + 1))
    while IFS= read -r path; do
        opened=$((opened + 1))
        case "$path" in /*) abs=$path ;; *) abs=$PWD/$path ;; esac
        abs=$(realpath -m "$abs")
        case "$abs" in
        "$dir"/*) continue ;;
        /etc/ld.so.cache | /sys/devices/system/cpu/*) continue ;;
        *.so | *.so.[0-9]*) case "$abs" in /lib/* | /usr/lib/* | /lib64/*) continue ;; esac ;;
        esac
        echo "$file: opened $path (outside $dir)"
        bad=$((bad + 1))
    done < <(sed -n 's/^[0-9]* *open[a-z0-9]*([^"]*"\([^"]*\)".*/\1/p' "$log")
done < <(grep -v '^#' expected.txt)
echo "strace over the corpus: $models models loaded, $opened files opened, $bad outside their model's folder"
[ "$bad" = 0 ] && [ "$models" -gt 100 ]
