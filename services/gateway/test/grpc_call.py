#!/usr/bin/python3
"""A gRPC client nobody in this project wrote: Debian's python3-grpcio with stubs generated from
the project's protos by python3-grpc-tools (grpc_tools.protoc). Used by the gateway and end-to-end
tests to prove a foreign gRPC stack works through nginx.

  grpc_call.py --protos PROTO_ROOT --target localhost:8443 --ca ca.crt [--cert c.crt --key c.key]
               [--token JWT] [--metadata k=v ...] [--max N] [--timeout S]
               crm.auth.v1.AuthService/Check '{"json": "request"}'    (or - to read it from stdin)

Prints one JSON line per response message ({"message": {...}}), then one final line
{"status": "OK"|"UNAUTHENTICATED"|..., "details": "..."}. Exit code 0 unless the call could not
be made at all. With --max N a server stream is cancelled after N messages (status CANCELLED).
"""
import argparse
import importlib
import json
import os
import re
import shutil
import sys
import tempfile

import grpc
from google.protobuf import json_format


def generate(proto_root, out):
    """Compile every .proto under proto_root into out. Files under grpc/ (health, reflection) would
    shadow the grpc package itself, so they are compiled from a renamed copy (crm_std/...)."""
    from grpc_tools import protoc
    import pkg_resources  # noqa: F401  (grpc_tools needs it for its include path)

    src = os.path.join(out, "_src")
    for dirpath, _dirs, files in os.walk(proto_root):
        for f in files:
            if f.endswith(".proto"):
                rel = os.path.relpath(os.path.join(dirpath, f), proto_root)
                if rel.startswith("grpc" + os.sep):
                    rel = "crm_std" + rel[len("grpc"):]
                dst = os.path.join(src, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(os.path.join(dirpath, f)) as fh:
                    text = fh.read()
                # Debian's grpc_tools bundles a protoc older than proto3 `optional`; the label
                # changes presence tracking only, not the wire format, so drop it in the copy.
                text = re.sub(r"(?m)^(\s*)optional\s+", r"\1", text)
                text = text.replace('import "grpc/', 'import "crm_std/')
                with open(dst, "w") as fh:
                    fh.write(text)
    protos = []
    for dirpath, _dirs, files in os.walk(src):
        protos += [os.path.join(dirpath, f) for f in files if f.endswith(".proto")]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", "-I" + src, "-I" + include, "--python_out=" + out, "--grpc_python_out=" + out] + protos
    if protoc.main(args) != 0:
        raise SystemExit("grpc_call: protoc failed")
    return protos, src


def find_service(out, protos, src, full_service):
    for p in protos:
        mod = os.path.relpath(p, src)[:-len(".proto")].replace(os.sep, ".")
        pb2 = importlib.import_module(mod + "_pb2")
        for name, svc in pb2.DESCRIPTOR.services_by_name.items():
            if svc.full_name == full_service:
                return pb2, importlib.import_module(mod + "_pb2_grpc"), svc
    raise SystemExit("grpc_call: no service " + full_service)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protos", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--token")
    ap.add_argument("--metadata", action="append", default=[])
    ap.add_argument("--max", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--authority")
    ap.add_argument("method")
    ap.add_argument("request", nargs="?", default="{}")
    a = ap.parse_args()

    out = tempfile.mkdtemp(prefix="grpc-call-")
    try:
        sys.path.insert(0, out)
        protos, src = generate(os.path.abspath(a.protos), out)
        service_name, method_name = a.method.split("/")
        pb2, pb2_grpc, svc = find_service(out, protos, src, service_name)
        method = svc.methods_by_name[method_name]
        req_cls = getattr(pb2, method.input_type.name, None)
        if req_cls is None:  # request type declared in another file
            from google.protobuf import symbol_database
            req_cls = symbol_database.Default().GetSymbol(method.input_type.full_name)
        # "-": the request JSON comes on stdin (a large message does not fit in an argument)
        req = json_format.Parse(sys.stdin.read() if a.request == "-" else a.request, req_cls())

        with open(a.ca, "rb") as f:
            ca = f.read()
        cert = key = None
        if a.cert:
            with open(a.cert, "rb") as f:
                cert = f.read()
            with open(a.key, "rb") as f:
                key = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        options = [("grpc.enable_http_proxy", 0)]
        if a.authority:
            options.append(("grpc.default_authority", a.authority))
        md = []
        if a.token:
            md.append(("authorization", "Bearer " + a.token))
        for kv in a.metadata:
            k, v = kv.split("=", 1)
            md.append((k.lower(), v))

        with grpc.secure_channel(a.target, creds, options=options) as channel:
            stub = getattr(pb2_grpc, svc.name + "Stub")(channel)
            call = getattr(stub, method_name)
            try:
                if method.server_streaming:
                    it = call(req, metadata=md, timeout=a.timeout)
                    n = 0
                    for msg in it:
                        print(json.dumps({"message": json_format.MessageToDict(msg)}), flush=True)
                        n += 1
                        if a.max and n >= a.max:
                            it.cancel()
                            break
                    code = it.code()
                    details = it.details()
                else:
                    msg = call(req, metadata=md, timeout=a.timeout)
                    print(json.dumps({"message": json_format.MessageToDict(msg)}), flush=True)
                    code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
        print(json.dumps({"status": code.name, "details": details or ""}), flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
