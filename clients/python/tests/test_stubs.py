"""The committed stubs under src/akidb/v1/ agree with proto/."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile

import pytest
from google.protobuf import descriptor_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROTO = os.path.normpath(os.path.join(ROOT, "..", "..", "proto"))
STUBS = os.path.join(ROOT, "src", "akidb", "v1")
sys.path.insert(0, ROOT)

import generate  # noqa: E402


def pinned_grpcio_tools() -> str:
    with open(os.path.join(ROOT, "requirements-dev.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("grpcio-tools=="):
                return line.split("==", 1)[1].strip()
    raise AssertionError("requirements-dev.txt pins no grpcio-tools")


def _protoc_descriptors() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    import grpc_tools
    from grpc_tools import protoc

    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        protos = [f"akidb/v1/{f}" for f in generate.proto_files()]
        assert protoc.main(["protoc", f"-I{PROTO}", f"-I{wkt}", f"--descriptor_set_out={out}", *protos]) == 0
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    return {fd.name: fd for fd in fds.file}


def _normalized(fd: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto.FromString(fd.SerializeToString())
    fd.ClearField("source_code_info")

    def strip(msgs: object) -> None:
        for m in msgs:  # type: ignore[attr-defined]
            for fld in m.field:
                fld.ClearField("json_name")
            strip(m.nested_type)

    strip(fd.message_type)
    return fd


def test_every_proto_has_a_module() -> None:
    for f in generate.proto_files():
        stem = f[: -len(".proto")]
        assert os.path.exists(os.path.join(STUBS, f"{stem}_pb2.py")), f
        assert os.path.exists(os.path.join(STUBS, f"{stem}_pb2.pyi")), f


def test_descriptors_match_proto() -> None:
    """What the committed modules register is what proto/ compiles to (any grpcio-tools)."""
    want = _protoc_descriptors()
    for name, fd in want.items():
        mod = importlib.import_module("akidb.v1." + os.path.basename(name)[: -len(".proto")] + "_pb2")
        got = descriptor_pb2.FileDescriptorProto.FromString(mod.DESCRIPTOR.serialized_pb)
        assert _normalized(got) == _normalized(fd), f"src/akidb/v1 is stale for {name}: run `python generate.py`"


def test_generated_files_are_identical() -> None:
    """Byte for byte what generate.py writes (with the pinned grpcio-tools)."""
    from importlib.metadata import version

    pinned = pinned_grpcio_tools()
    if version("grpcio-tools") != pinned:
        pytest.skip(f"grpcio-tools {version('grpcio-tools')} is installed, the stubs are pinned to {pinned} (requirements-dev.txt)")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "generate.py"), "--out", tmp], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        fresh = os.path.join(tmp, "akidb", "v1")
        committed = sorted(f for f in os.listdir(STUBS) if f.endswith((".py", ".pyi")))
        assert sorted(os.listdir(fresh)) == committed, "the set of generated files differs: run `python generate.py`"
        for f in committed:
            with open(os.path.join(fresh, f), "rb") as a, open(os.path.join(STUBS, f), "rb") as b:
                assert a.read() == b.read(), f"src/akidb/v1/{f} differs from generate.py's output: run `python generate.py`"


def test_internal_storage_service_not_shipped() -> None:
    assert not os.path.exists(os.path.join(STUBS, "storage_pb2_grpc.py"))
    assert not os.path.exists(os.path.join(STUBS, "..", "..", "google")), "google.api comes from googleapis-common-protos"
