"""Synthetic ESP32 app ELF for the esptool oracle tests (research/device.md section 3).

It writes an EM_XTENSA ELF with section headers only, laid out like an ESP-IDF app
(app descriptor first in DROM, rodata, DRAM, IRAM vectors and text, IROM), so that
`esptool elf2image` turns it into a realistic app image. Content is derived from the
seed, so the output is byte-for-byte reproducible.
"""
import argparse, hashlib, struct
ap = argparse.ArgumentParser(); ap.add_argument("out")
ap.add_argument("--version", default="1.0.0"); ap.add_argument("--project", default="fota_test_app")
ap.add_argument("--secure-version", type=int, default=0); ap.add_argument("--seed", default="seed0")
ap.add_argument("--size-kb", type=int, default=200); a = ap.parse_args()
def filler(n, tag):
    out, c = bytearray(), 0
    while len(out) < n: out += hashlib.sha256(f"{a.seed}/{tag}/{c}".encode()).digest(); c += 1
    return bytes(out[:n])
def app_desc():                      # esp_app_desc_t, 256 bytes
    d = bytearray(256); struct.pack_into("<II", d, 0, 0xABCD5432, a.secure_version)
    d[16:48] = a.version.encode()[:31].ljust(32, b"\0"); d[48:80] = a.project.encode()[:31].ljust(32, b"\0")
    d[80:96] = b"12:00:00".ljust(16, b"\0"); d[96:112] = b"Jan  1 2025".ljust(16, b"\0")
    d[112:144] = b"v5.5-synthetic".ljust(32, b"\0")   # 144..176 elf sha filled by --elf-sha256-offset 0xb0
    struct.pack_into("<HH", d, 176, 0, 99); d[180] = 16; d[181] = 2   # mmu 64K, DIO
    return bytes(d)
total = a.size_kb * 1024; rodata = max(4096, total * 30 // 100); dram = 8192; iram = 24576
irom = max(4096, total - rodata - dram - iram - 1024 - 256); rodata -= rodata % 4; irom -= irom % 4
secs = [(b".flash.appdesc", 0x3F400020, app_desc(), 2), (b".flash.rodata", 0x3F400120, filler(rodata, "rodata"), 2),
        (b".dram0.data", 0x3FFB0000, filler(dram, "dram"), 3), (b".iram0.vectors", 0x40080000, filler(1024, "vectors"), 6),
        (b".iram0.text", 0x40080400, filler(iram, "iram"), 6), (b".flash.text", 0x400D0020, filler(irom, "irom"), 6)]
shstr = b"\0" + b"".join(n + b"\0" for n, *_ in secs) + b".shstrtab\0"
noff, p = {}, 1
for n, *_ in secs: noff[n] = p; p += len(n) + 1
body, offs = bytearray(), []
for n, v, data, f in secs:
    while (52 + len(body)) % 4: body += b"\0"
    offs.append(52 + len(body)); body += data
stroff = 52 + len(body); body += shstr
while (52 + len(body)) % 4: body += b"\0"
shoff = 52 + len(body); sh = bytearray(40)
for (n, v, data, f), o in zip(secs, offs): sh += struct.pack("<10I", noff[n], 1, f, v, o, len(data), 0, 0, 4, 0)
sh += struct.pack("<10I", p, 3, 0, 0, stroff, len(shstr), 0, 0, 1, 0); shnum = len(secs) + 2
hdr = struct.pack("<16sHHIIIIIHHHHHH", b"\x7fELF\x01\x01\x01" + b"\0" * 9, 2, 0x5E, 1, 0x40080400, 0, shoff, 0x300,
                  52, 0, 0, 40, shnum, shnum - 1)
open(a.out, "wb").write(hdr + body + sh)
