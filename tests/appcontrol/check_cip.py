#!/usr/bin/env python3
"""Read an App Control binary policy (.cip) strictly and compare it with its SiPolicy XML.

usage: check_cip.py POLICY.cip POLICY.xml      exit 0: they agree; 1: they do not; 2: usage

The reader follows the reading order of Matt Graeber's CIPolicyParser (WDACTools), which was
written against policies Windows compiled: header, file rules, signers, update-policy and CI
signers, signing scenarios, HVCI options, settings, then the blocks tagged 3..N and the end
tag N+1. It is strict where a lax reader would not notice a writer's slip: the header size is
0x40, bit 31 of the options is set, every padding byte and every string's trailing word is 0,
every index is in range, every block tag is its number, and the last tag ends the file.
It shares no code with the writer it checks.
"""
import struct
import sys
import uuid
import xml.etree.ElementTree as ET

NS = {"si": "urn:schemas-microsoft-com:sipolicy"}
OPTIONS = {
    "Enabled:UMCI": 0x4,
    "Enabled:Audit Mode": 0x10000,
    "Enabled:Inherit Default Policy": 0x40000,
    "Enabled:Unsigned System Integrity Policy": 0x80000,
    "Enabled:Advanced Boot Options Menu": 0x800000,
    "Required:Enforce Store Applications": 0x2000000,
}


class Bad(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise Bad(f"ends early at {self.at:#x} (wanted {n} bytes)")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def guid(self):
        return uuid.UUID(bytes_le=self.take(16))

    def blob(self):
        n = self.u32()
        value = self.take(n)
        pad = self.take((4 - n % 4) % 4)
        if any(pad):
            raise Bad(f"non-zero padding at {self.at:#x}")
        return value

    def string(self):
        raw = self.blob()
        if self.u32() != 0:
            raw_at = self.at - 4
            raise Bad(f"string without its trailing zero word at {raw_at:#x}")
        if len(raw) % 2:
            raise Bad("odd UTF-16 length")
        return raw.decode("utf-16-le")

    def indices(self, limit):
        out = [self.u32() for _ in range(self.u32())]
        if any(i >= limit for i in out):
            raise Bad(f"an index out of range (< {limit}): {out}")
        return out


def version(v):
    if v == 0:
        return None
    return ".".join(str((v >> s) & 0xFFFF) for s in (48, 32, 16, 0))


def read_cip(data):
    r = Reader(data)
    fmt = r.u32()
    if fmt < 7:
        raise Bad(f"format {fmt}: FilePath and PolicyID need 7 or more")
    base_in_header = r.guid()
    platform = r.guid()
    flags = r.u32()
    if not flags & 0x80000000:
        raise Bad("option bit 31 is not set")
    eku_count, rule_count, signer_count, scenario_count = (r.u32() for _ in range(4))
    version_ex = version(r.u64())
    if r.u32() != 0x40:
        raise Bad("the header size word is not 0x40")
    for _ in range(eku_count):
        r.blob()
    rules = []
    for _ in range(rule_count):
        kind = r.u32()
        if kind not in (0, 1, 2):
            raise Bad(f"rule type {kind}")
        name = r.string()
        minimum = r.u64()
        digest = r.blob()
        rules.append({
            "type": {0: "Deny", 1: "Allow", 2: "FileAttrib"}[kind],
            "FileName": name or None,
            "MinimumFileVersion": None if minimum == 0xFFFFFFFFFFFFFFFF else version(minimum),
            "Hash": digest.hex().upper() or None,
        })
    if signer_count:
        raise Bad("signers: this checker reads policies without signers only")
    r.indices(signer_count)  # UpdatePolicySigners
    r.indices(signer_count)  # CiSigners
    scenarios = []
    for _ in range(scenario_count):
        value = r.u32()
        r.indices(scenario_count)
        r.u32()  # minimum hash algorithm
        refs = []
        for group in range(3):
            for _ in range(r.u32()):  # allowed signers
                r.u32()
                r.indices(rule_count)
            for _ in range(r.u32()):  # denied signers
                r.u32()
                r.indices(rule_count)
            got = r.indices(rule_count)
            if group == 0:
                refs = got
        scenarios.append((value & 0xFF, refs))
    r.u32()  # HvciOptions
    if r.u32() != 0:
        raise Bad("settings: this checker reads policies without settings only")
    policy_id = base_id = None
    for tag in range(3, fmt + 1):
        if r.u32() != tag:
            raise Bad(f"block {tag} does not start with its tag")
        if tag == 3:
            for rule in rules:
                rule["MaximumFileVersion"] = version(r.u64())
                for _ in range(r.u32()):
                    r.string()
        elif tag == 4:
            for rule in rules:
                r.string()
                r.string()
                rule["ProductName"] = r.string() or None
        elif tag == 5:
            for _ in rules:
                r.string()
                r.u64()
        elif tag == 6:
            policy_id, base_id = r.guid(), r.guid()
            r.indices(signer_count)
        elif tag == 7:
            for rule in rules:
                rule["FilePath"] = r.string() or None
        elif tag == 8:
            if r.u32() != 0:
                raise Bad("app settings: not read by this checker")
    if r.u32() != fmt + 1:
        raise Bad("no end tag")
    if r.at != len(data):
        raise Bad(f"{len(data) - r.at} bytes after the end tag")
    if base_in_header != base_id:
        raise Bad("the header's GUID is not the base policy's")
    return {
        "version": version_ex, "platform": platform, "flags": flags, "rules": rules,
        "scenarios": scenarios, "policy_id": policy_id, "base_id": base_id,
    }


def read_xml(path):
    root = ET.parse(path).getroot()
    text = lambda tag: root.find(f"si:{tag}", NS).text.strip()
    rules, ids = [], {}
    for el in root.find("si:FileRules", NS) or []:
        tag = el.tag.split("}")[1]
        ids[el.get("ID")] = len(rules)
        rules.append({
            "type": tag,
            "FileName": el.get("FileName"),
            "MinimumFileVersion": el.get("MinimumFileVersion"),
            "MaximumFileVersion": el.get("MaximumFileVersion"),
            "Hash": el.get("Hash"),
            "ProductName": el.get("ProductName"),
            "FilePath": el.get("FilePath"),
        })
    scenarios = []
    for sc in root.find("si:SigningScenarios", NS):
        refs = [ids[ref.get("RuleID")] for ref in sc.iter(f"{{{NS['si']}}}FileRuleRef")]
        scenarios.append((int(sc.get("Value")), refs))
    flags = 0x80000000
    for option in root.iter(f"{{{NS['si']}}}Option"):
        flags |= OPTIONS[option.text.strip()]
    return {
        "version": text("VersionEx"), "platform": uuid.UUID(text("PlatformID")), "flags": flags,
        "rules": rules, "scenarios": scenarios,
        "policy_id": uuid.UUID(text("PolicyID")), "base_id": uuid.UUID(text("BasePolicyID")),
    }


def key(rule):
    return tuple(sorted((k, "" if v is None else v) for k, v in rule.items()))


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        binary = read_cip(open(sys.argv[1], "rb").read())
    except Bad as e:
        print(f"FAIL {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    source = read_xml(sys.argv[2])
    problems = []
    for field in ("version", "platform", "flags", "policy_id", "base_id"):
        if binary[field] != source[field]:
            problems.append(f"{field}: binary {binary[field]!r}, XML {source[field]!r}")
    if sorted(map(key, binary["rules"])) != sorted(map(key, source["rules"])):
        problems.append(f"file rules differ:\n  binary {binary['rules']}\n  XML    {source['rules']}")
    # Scenarios refer to the same rules (by content: the binary sorts them).
    for (bv, brefs), (xv, xrefs) in zip(binary["scenarios"], source["scenarios"]):
        b = sorted(key(binary["rules"][i]) for i in brefs)
        x = sorted(key(source["rules"][i]) for i in xrefs)
        if bv != xv or b != x:
            problems.append(f"scenario {xv}: the binary's refers to other rules")
    if len(binary["scenarios"]) != len(source["scenarios"]):
        problems.append("another number of signing scenarios")
    if problems:
        print("FAIL " + "\n".join(problems), file=sys.stderr)
        return 1
    print(f"OK: {len(binary['rules'])} file rules, {len(binary['scenarios'])} scenarios, flags {binary['flags']:#010x}")
    return 0


sys.exit(main())
