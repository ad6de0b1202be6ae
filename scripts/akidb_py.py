"""Shared by the Python scripts: gRPC stubs generated from proto/ with grpcio-tools (as a new
user would), and a reader for the TEXMEX .fvecs/.ivecs files."""
import os
import struct
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate_stubs():
    from grpc_tools import protoc
    import grpc_tools
    out = tempfile.mkdtemp(prefix="akidb-py-")
    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = [os.path.join(d, f) for d in (os.path.join("akidb", "v1"), os.path.join("google", "api"))
              for f in sorted(os.listdir(os.path.join(ROOT, "proto", d)))]
    rc = protoc.main(["protoc", f"-I{os.path.join(ROOT, 'proto')}", f"-I{wkt}", f"--python_out={out}", f"--grpc_python_out={out}", *protos])
    assert rc == 0, "grpcio-tools failed to compile proto/"
    sys.path.insert(0, out)


def read_xvecs(path, fmt):
    """Rows of an .fvecs (fmt "f") or .ivecs (fmt "i") file."""
    rows = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off < len(data):
        (d,) = struct.unpack_from("<i", data, off)
        off += 4
        rows.append(list(struct.unpack_from(f"<{d}{fmt}", data, off)))
        off += 4 * d
    return rows
