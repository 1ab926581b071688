#!/usr/bin/env python3
"""Extracts the uncompressed ELF vmlinux from a bzImage, so QEMU can boot it through the PVH
entry point (the kernel's XEN_ELFNOTE_PHYS32_ENTRY note) and skip the in-guest decompression,
which takes seconds under TCG. Usage: extract-vmlinux.py BZIMAGE OUT"""
import bz2, lzma, os, subprocess, sys, zlib

def candidates(data):
    # (magic, decompressor) pairs as in the kernel's scripts/extract-vmlinux.
    yield b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)
    yield b"\x28\xb5\x2f\xfd", None  # zstd: handled by the zstd tool below
    yield b"\x1f\x8b\x08", lambda b: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(b)
    yield b"\x5d\x00\x00", lambda b: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(b)
    yield b"BZh", lambda b: bz2.BZ2Decompressor().decompress(b)

def main():
    src, out = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    for magic, decompress in candidates(data):
        pos = data.find(magic)
        while pos >= 0:
            try:
                if decompress is None:
                    elf = subprocess.run(["zstd", "-dcq"], input=data[pos:], capture_output=True).stdout
                else:
                    elf = decompress(data[pos:])
            except Exception:
                elf = b""
            if elf[:4] == b"\x7fELF":
                tmp = out + ".tmp.%d" % os.getpid()
                open(tmp, "wb").write(elf)
                os.replace(tmp, out)
                return 0
            pos = data.find(magic, pos + 1)
    print("extract-vmlinux: no compressed ELF found in " + src, file=sys.stderr)
    return 1

if __name__ == "__main__":
    sys.exit(main())
