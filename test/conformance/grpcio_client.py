"""Python gRPC (Debian's python3-grpcio) as a client of the conformance suite, driven by Node.

Generic calls on raw bytes (channel.unary_unary / unary_stream without serializers), so no code
is generated: Node encodes each request and decodes each answer. One process serves a whole test
file. Protocol, one JSON object per line:

  stdin   {"op": "call", "id": ..., "kind": "unary"|"stream", "target": "127.0.0.1:port",
           "tls_ca": path|null, "path": "/pkg.Service/Method", "request": base64,
           "metadata": [[k, v]], "timeout": seconds|null, "compression": "gzip"|"deflate"|null,
           "max_receive": bytes|null, "cancel": "on-command"|null,
           "cancel_after_first": bool, "pause_after_first": bool}
          {"op": "cancel", "id": ...}   cancels that call (its handler has started)
          {"op": "resume", "id": ...}   resumes reading a paused stream
  stdout  {"id": ..., "event": "first"} a paused stream got its first message
          {"id": ..., "code": int, "message": str, "initial": [[k, v]], "trailing": [[k, v]],
           "details_bin": base64|null, "response": base64|null, "messages": [base64]}

Run with Debian's interpreter (/usr/bin/python3), which has the grpc module.
"""

import base64
import json
import sys
import threading

import grpc

out_lock = threading.Lock()
channels = {}
cancels = {}
resumes = {}
futures = {}
state_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def channel_for(target, ca, max_receive):
    key = (target, ca, max_receive)
    if key not in channels:
        options = []
        if max_receive:
            options.append(("grpc.max_receive_message_length", max_receive))
        if ca:
            with open(ca, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            channels[key] = grpc.secure_channel(target, creds, options=options)
        else:
            channels[key] = grpc.insecure_channel(target, options=options)
    return channels[key]


def pairs(metadata):
    result = []
    for k, v in metadata or ():
        if isinstance(v, bytes):
            v = base64.b64encode(v).decode()
        result.append([k, v])
    return result


def details_bin(metadata):
    for k, v in metadata or ():
        if k == "grpc-status-details-bin":
            return base64.b64encode(v).decode() if isinstance(v, bytes) else v
    return None


COMPRESSION = {None: None, "gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}


def status_of(call, rpc_error=None):
    source = rpc_error if rpc_error is not None else call
    code = source.code()
    return {
        "code": code.value[0],
        "message": source.details() or "",
        "initial": pairs(source.initial_metadata()),
        "trailing": pairs(source.trailing_metadata()),
        "details_bin": details_bin(source.trailing_metadata()),
    }


def run_unary(spec):
    ch = channel_for(spec["target"], spec.get("tls_ca"), spec.get("max_receive"))
    method = ch.unary_unary(spec["path"])
    future = method.future(
        base64.b64decode(spec["request"]),
        metadata=[tuple(p) for p in spec.get("metadata") or []],
        timeout=spec.get("timeout"),
        compression=COMPRESSION[spec.get("compression")],
    )
    with state_lock:
        futures[spec["id"]] = future
        pending = cancels.pop(spec["id"], False)
    if pending:
        future.cancel()
    try:
        response = future.result()
        result = status_of(future)
        result["response"] = base64.b64encode(response).decode()
    except grpc.FutureCancelledError:
        result = {"code": grpc.StatusCode.CANCELLED.value[0], "message": "cancelled by the client", "initial": [], "trailing": [], "details_bin": None}
    except grpc.RpcError as err:
        result = status_of(future, err)
    return result


def run_stream(spec):
    ch = channel_for(spec["target"], spec.get("tls_ca"), spec.get("max_receive"))
    method = ch.unary_stream(spec["path"])
    call = method(
        base64.b64decode(spec["request"]),
        metadata=[tuple(p) for p in spec.get("metadata") or []],
        timeout=spec.get("timeout"),
        compression=COMPRESSION[spec.get("compression")],
    )
    messages = []
    try:
        for message in call:
            messages.append(base64.b64encode(message).decode())
            if len(messages) == 1 and spec.get("pause_after_first"):
                event = threading.Event()
                with state_lock:
                    resumes[spec["id"]] = event
                emit({"id": spec["id"], "event": "first"})
                event.wait()
            if len(messages) == 1 and spec.get("cancel_after_first"):
                call.cancel()
        result = status_of(call)
    except grpc.RpcError as err:
        result = status_of(call, err)
    result["messages"] = messages
    return result


def worker(spec):
    try:
        result = run_unary(spec) if spec["kind"] == "unary" else run_stream(spec)
    except Exception as err:  # a harness bug: report it as the call's result
        result = {"code": -1, "message": "%s: %s" % (type(err).__name__, err), "initial": [], "trailing": [], "details_bin": None}
    result["id"] = spec["id"]
    emit(result)


def main():
    threads = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd["op"] == "call":
            t = threading.Thread(target=worker, args=(cmd,), daemon=True)
            t.start()
            threads.append(t)
        elif cmd["op"] == "cancel":
            with state_lock:
                future = futures.get(cmd["id"])
                if future is None:
                    cancels[cmd["id"]] = True
            if future is not None:
                future.cancel()
        elif cmd["op"] == "resume":
            with state_lock:
                event = resumes.get(cmd["id"])
            if event is not None:
                event.set()
    for t in threads:
        t.join()
    for ch in channels.values():
        ch.close()


if __name__ == "__main__":
    main()
