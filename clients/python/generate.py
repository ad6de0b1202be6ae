#!/usr/bin/env python3
"""Regenerate the protobuf/gRPC stubs under src/akidb/v1/ from the repository's proto/.

Run with the grpcio-tools version pinned in requirements-dev.txt (the committed stubs are
compared byte for byte with this script's output by tests/test_stubs.py):

    pip install -r requirements-dev.txt
    python generate.py            # writes src/akidb/v1/
    python generate.py --out DIR  # writes DIR/akidb/v1/ instead (what the test does)

Every akidb/v1/*.proto gets message classes (`x_pb2.py`) and type stubs (`x_pb2.pyi`). Service
stubs (`x_pb2_grpc.py`) are generated only for the public services; storage.proto's are
left out, since its StorageService is internal (the SDK reaches AdminService through its own
method table). google/api/annotations.proto is not generated: googleapis-common-protos
provides `google.api.annotations_pb2` at run time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PACKAGE_DIR = os.path.join(HERE, "src")
# Protos whose services the SDK talks to: they get *_pb2_grpc.py too.
GRPC_PROTOS = ("collection.proto", "ingest.proto", "query.proto", "telemetry.proto")
INIT = '"""Generated protobuf and gRPC stubs of the akidb.v1 API (see generate.py)."""\n'


def proto_files() -> list[str]:
    d = os.path.join(PROTO_ROOT, "akidb", "v1")
    return sorted(f for f in os.listdir(d) if f.endswith(".proto"))


def generate(out_root: str) -> str:
    """Write akidb/v1/ under `out_root`, replacing what was there; return that directory."""
    import grpc_tools
    from grpc_tools import protoc

    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    target = os.path.join(out_root, "akidb", "v1")
    with tempfile.TemporaryDirectory(prefix="akidb-gen-") as tmp:
        base = ["protoc", f"-I{PROTO_ROOT}", f"-I{wkt}"]
        protos = [f"akidb/v1/{f}" for f in proto_files()]
        if protoc.main(base + [f"--python_out={tmp}", f"--pyi_out={tmp}", *protos]) != 0:
            raise SystemExit("protoc failed on the messages")
        services = [f"akidb/v1/{f}" for f in GRPC_PROTOS]
        if protoc.main(base + [f"--grpc_python_out={tmp}", *services]) != 0:
            raise SystemExit("protoc failed on the services")
        # protoc writes akidb/v1/*_pb2*.py only: replace the generated files, keep nothing stale.
        os.makedirs(target, exist_ok=True)
        for f in os.listdir(target):
            if f.endswith((".py", ".pyi")):
                os.remove(os.path.join(target, f))
        src = os.path.join(tmp, "akidb", "v1")
        for f in sorted(os.listdir(src)):
            shutil.copyfile(os.path.join(src, f), os.path.join(target, f))
    with open(os.path.join(target, "__init__.py"), "w", encoding="utf-8") as f:
        f.write(INIT)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=PACKAGE_DIR, help="root to write akidb/v1/ under (default: src/)")
    args = p.parse_args(argv)
    target = generate(args.out)
    print(f"wrote {len(os.listdir(target))} files to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
