#!/usr/bin/env python3
"""Parse Santa sync messages with Google's protobuf against Santa's own schema.

usage: validate.py PROTO DIR   (DIR holds MessageName.N.json files: each is parsed strictly
                               into that message of sync/v1.proto)
Exit 0: every file parses; 1: one does not (printed); 2: bad usage or setup.

Strict parsing (unknown keys are errors) is stricter than Santa itself, which ignores them:
so a typo, a v2-only field or a key of the wrong type is caught. The v2 upgrade keys are
refused by name as well.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

V2_KEYS = {"push_token", "pushToken", "push_issuer_token", "pushIssuerToken"}


def compile_schema(proto, work):
    import grpc_tools
    import site

    os.makedirs(os.path.join(work, "sync"))
    shutil.copy(proto, os.path.join(work, "sync", "v1.proto"))
    out = os.path.join(work, "out")
    os.makedirs(out)
    includes = [os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")] + site.getsitepackages()
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I" + work] + ["-I" + i for i in includes]
    cmd += ["--python_out=" + out, "sync/v1.proto"]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        print("protoc failed:", done.stderr, file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, out)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    proto, folder = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        compile_schema(proto, work)
        from google.protobuf import json_format
        from sync import v1_pb2

        checked = 0
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".json"):
                continue
            message = name.split(".")[0]
            cls = getattr(v1_pb2, message, None)
            if cls is None:
                print(f"{name}: no message {message} in the schema", file=sys.stderr)
                return 2
            text = open(os.path.join(folder, name), encoding="utf-8").read()
            try:
                json_format.Parse(text, cls(), ignore_unknown_fields=False)
            except json_format.ParseError as e:
                print(f"FAIL {name}: {e}\n{text[:2000]}", file=sys.stderr)
                return 1
            body = json.loads(text)
            if isinstance(body, dict) and V2_KEYS & set(body):
                print(f"FAIL {name}: sync v2 upgrade keys {sorted(V2_KEYS & set(body))}", file=sys.stderr)
                return 1
            checked += 1
        print(f"{checked} message(s) parse as Santa's sync/v1.proto")
        return 0 if checked else 2


sys.exit(main())
