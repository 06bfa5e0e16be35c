#!/usr/bin/env bash
# Builds the add-in as shipped and packs dist/WebSocket.zip, the archive 1C loads from a
# common template:
#   ПодключитьВнешнююКомпоненту("ОбщийМакет.КомпонентаWebSocket", "WebSocket", ТипВнешнейКомпоненты.Native)
#
# * Linux x86_64: built here with cargo-zigbuild against glibc 2.17 (old 1C servers), release
#   profile, no test-only members, stripped. The script prints its size and the highest GLIBC
#   symbol version it needs, and fails if that is above 2.17.
# * Windows x64 / x86: cannot be built on this machine; they are packed when supplied, as
#   dist-input/windows-x64/websocket1c.dll and dist-input/windows-x86/websocket1c.dll, or
#   through WS1C_WINDOWS_X64_DLL / WS1C_WINDOWS_X86_DLL (each is checked to be a PE image of
#   the right machine).
# * MANIFEST.XML in the archive is manifest/MANIFEST.XML reduced to the binaries actually
#   packed, so it always lists exactly what the archive contains.
#
# Works alone on a clean checkout: installs its pinned tools (ziglang from PyPI into a venv,
# cargo-zigbuild from crates.io) into .tools/ (or $WS1C_TOOLS) the first time, and reuses
# them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

ZIGLANG_VERSION=0.15.2
ZIGBUILD_VERSION=0.24.1
TARGET=x86_64-unknown-linux-gnu
GLIBC_MAX=2.17
tools="${WS1C_TOOLS:-$root/.tools}"
dist="$root/dist"
zip_path="$dist/WebSocket.zip"
stage="$dist/stage"
start=$(date +%s)
# A failed run leaves no archive behind, never a stale one.
rm -f "$zip_path"
trap 'rm -rf "$stage"' EXIT

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

# ---- tools ------------------------------------------------------------------------------
need=()
command -v python3 >/dev/null || need+=(python3)
command -v objdump >/dev/null || need+=(binutils)
command -v cc >/dev/null || need+=(gcc) # cargo-zigbuild's own build scripts link with cc
if [ ${#need[@]} -gt 0 ]; then
    as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
if ! "$tools/venv/bin/python" -c "import ziglang, importlib.metadata as m; assert m.version('ziglang') == '$ZIGLANG_VERSION'" 2>/dev/null; then
    echo "installing ziglang $ZIGLANG_VERSION into $tools/venv"
    rm -rf "$tools/venv"
    python3 -m venv "$tools/venv" || {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
        python3 -m venv "$tools/venv"
    }
    "$tools/venv/bin/pip" install -q "ziglang==$ZIGLANG_VERSION"
fi
if [ "$("$tools/bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild $ZIGBUILD_VERSION" ]; then
    echo "installing cargo-zigbuild $ZIGBUILD_VERSION into $tools"
    cargo install -q --locked --root "$tools" "cargo-zigbuild@$ZIGBUILD_VERSION"
fi
# cargo-zigbuild runs `python3 -m ziglang` when there is no `zig`: the venv's python3 first.
export PATH="$tools/venv/bin:$tools/bin:$PATH"

# ---- Linux x86_64 against glibc 2.17 ---------------------------------------------------
# No --features: the test-only members exist only with ws1c-abi/test-hooks.
echo "building the add-in for $TARGET (glibc $GLIBC_MAX)"
cargo zigbuild --release --locked -p ws1c-abi --target "$TARGET.$GLIBC_MAX"
built="$root/target/$TARGET/release/libwebsocket1c.so"

rm -rf "$stage"
mkdir -p "$stage"
linux="$stage/websocket1c_linux_x86_64.so"
strip --strip-all -o "$linux" "$built"
glibc=$(objdump -T "$linux" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
size=$(stat -c %s "$linux")
echo "Linux x86_64: $(basename "$linux"), $size bytes ($((size / 1024)) KiB), needs ${glibc:-no GLIBC symbols}"
if [ -n "$glibc" ] && [ "$(printf '%s\n' "${glibc#GLIBC_}" "$GLIBC_MAX" | sort -V | tail -1)" != "$GLIBC_MAX" ]; then
    echo "error: $glibc is newer than GLIBC_$GLIBC_MAX" >&2
    exit 1
fi

# ---- Windows, when supplied ------------------------------------------------------------
win64="${WS1C_WINDOWS_X64_DLL:-$root/dist-input/windows-x64/websocket1c.dll}"
win32="${WS1C_WINDOWS_X86_DLL:-$root/dist-input/windows-x86/websocket1c.dll}"
[ -f "$win64" ] && cp "$win64" "$stage/websocket1c_windows_x86_64.dll" && echo "Windows x64: $win64"
[ -f "$win32" ] && cp "$win32" "$stage/websocket1c_windows_i386.dll" && echo "Windows x86: $win32"

# ---- MANIFEST.XML and the archive ------------------------------------------------------
python3 - "$root/manifest/MANIFEST.XML" "$stage" "$zip_path" <<'PY'
import os, struct, sys, zipfile
import xml.etree.ElementTree as ET

template, stage, out = sys.argv[1:4]
NS = "http://v8.1c.ru/8.2/addin/bundle"
PE_MACHINE = {"x86_64": 0x8664, "i386": 0x014C}

bundle = ET.parse(template).getroot()
present = set(os.listdir(stage))
lines = ['<?xml version="1.0" encoding="UTF-8"?>',
         f'<bundle xmlns="{NS}" name="{bundle.get("name")}">']
listed = []
for c in bundle.findall(f"{{{NS}}}component"):
    path = c.get("path")
    if path not in present:
        continue
    data = open(os.path.join(stage, path), "rb").read()
    if c.get("os") == "Windows":
        # A PE image: "MZ", e_lfanew at 0x3C, "PE\0\0", then the machine field.
        pe = struct.unpack_from("<I", data, 0x3C)[0] if data[:2] == b"MZ" else None
        machine = struct.unpack_from("<H", data, pe + 4)[0] if pe and data[pe:pe + 4] == b"PE\0\0" else None
        if machine != PE_MACHINE[c.get("arch")]:
            sys.exit(f"error: {path} is not a Windows {c.get('arch')} DLL")
    elif data[:4] != b"\x7fELF":
        sys.exit(f"error: {path} is not an ELF library")
    lines.append(f'\t<component os="{c.get("os")}" path="{path}" type="native" arch="{c.get("arch")}"/>')
    listed.append(path)
lines.append("</bundle>")
unlisted = present - set(listed)
if unlisted:
    sys.exit(f"error: not in manifest/MANIFEST.XML: {sorted(unlisted)}")

tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    def add(name, data):
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        z.writestr(info, data)
    add("MANIFEST.XML", ("\n".join(lines) + "\n").encode("utf-8"))
    for path in listed:
        add(path, open(os.path.join(stage, path), "rb").read())
os.replace(tmp, out)
print("\n".join(lines))
PY

echo
echo "$zip_path: $(stat -c %s "$zip_path") bytes"
python3 -c 'import sys, zipfile
for i in zipfile.ZipFile(sys.argv[1]).infolist():
    print(f"  {i.file_size:>10}  {i.filename}")' "$zip_path"
echo "packaged in $(($(date +%s) - start)) s"
