"""CurveZMQ transport encryption (metadata.supported_encryption: ["curve"]):
the kernel applies the connection file's curve_publickey/curve_secretkey to
every socket before binding. A client that holds the kernel's public key
(pyzmq's curve support, over Debian's libzmq) is served on every channel;
one without it, or with another key, gets nothing, and the kernel goes on.
jupyter_client 7.4 knows no curve keys, so the kernel is started from its
kernelspec's argv and spoken to with pyzmq and jupyter_client's Session."""
import json
import socket
import subprocess
import uuid

import pytest
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.session import Session

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CurveZMQ")

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def kernel_argv(conn_file):
    spec = KernelSpecManager().get_kernel_spec("actmax")
    assert spec.metadata.get("supported_encryption") == ["curve"]
    return [a.replace("{connection_file}", str(conn_file)) for a in spec.argv]


def write_conn(tmp_path, **extra):
    info = dict(zip((f"{c}_port" for c in CHANNELS), free_ports(len(CHANNELS))))
    info.update(ip="127.0.0.1", transport="tcp", key=uuid.uuid4().hex,
                signature_scheme="hmac-sha256", kernel_name="actmax")
    info.update(extra)
    path = tmp_path / f"kernel-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(info))
    return path, info


class Client:
    """pyzmq sockets on the kernel's ports; curve=(server_public, client
    pair) or None for a client without keys."""

    def __init__(self, info, curve):
        self.ctx = zmq.Context()
        self.session = Session(key=info["key"].encode(), signature_scheme="hmac-sha256")
        self.socks = {}
        kinds = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER,
                 "iopub": zmq.SUB, "hb": zmq.REQ}
        for ch, kind in kinds.items():
            s = self.ctx.socket(kind)
            s.linger = 0
            # A DEALER without a completed handshake has no peer to send to:
            # sending would block for ever.
            s.sndtimeo = 1000
            if curve:
                server_public, (public, secret) = curve
                s.curve_serverkey = server_public
                s.curve_publickey = public
                s.curve_secretkey = secret
            if kind == zmq.SUB:
                s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(f"tcp://127.0.0.1:{info[ch + '_port']}")
            self.socks[ch] = s

    def request(self, ch, msg_type, content, timeout_ms=5000):
        s = self.socks[ch]
        try:
            s.send_multipart(self.session.serialize(self.session.msg(msg_type, content)))
        except zmq.Again:
            return None  # no peer: the handshake never completed
        if not s.poll(timeout_ms):
            return None
        frames = s.recv_multipart()
        return self.session.deserialize(frames[frames.index(b"<IDS|MSG>") + 1:])

    def iopub(self, timeout_ms=5000):
        s = self.socks["iopub"]
        if not s.poll(timeout_ms):
            return None
        frames = s.recv_multipart()
        return self.session.deserialize(frames[frames.index(b"<IDS|MSG>") + 1:])

    def close(self):
        for s in self.socks.values():
            s.close()
        self.ctx.term()


@pytest.fixture()
def curve_kernel(tmp_path):
    public, secret = zmq.curve_keypair()
    path, info = write_conn(tmp_path, curve_publickey=public.decode(),
                            curve_secretkey=secret.decode())
    proc = subprocess.Popen(kernel_argv(path), stderr=subprocess.PIPE, text=True)
    yield proc, info, public
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_keyed_client_is_served_on_every_channel(curve_kernel):
    proc, info, public = curve_kernel
    c = Client(info, (public, zmq.curve_keypair()))
    try:
        welcome = c.iopub(timeout_ms=20000)
        assert welcome and welcome["msg_type"] == "iopub_welcome"
        reply = c.request("shell", "kernel_info_request", {}, timeout_ms=20000)
        assert reply["content"]["status"] == "ok"
        reply = c.request("shell", "execute_request",
                          {"code": "%echo over curve", "silent": False})
        assert reply["content"]["status"] == "ok"
        streams = []
        while True:
            m = c.iopub()
            assert m is not None, "iopub went quiet"
            if m["msg_type"] == "stream":
                streams.append(m["content"]["text"])
            if (m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                    and m["parent_header"].get("msg_id") == reply["parent_header"]["msg_id"]):
                break
        assert streams == ["over curve\n"]
        c.socks["hb"].send(b"ping")
        assert c.socks["hb"].poll(5000) and c.socks["hb"].recv() == b"ping"
        reply = c.request("control", "shutdown_request", {"restart": False})
        assert reply["content"]["status"] == "ok"
        assert proc.wait(timeout=30) == 0
        assert "CurveZMQ encryption" in proc.stderr.read()
    finally:
        c.close()


def test_client_without_the_key_cannot_connect(curve_kernel):
    proc, info, public = curve_kernel
    good = Client(info, (public, zmq.curve_keypair()))
    plain = Client(info, None)
    other_public, _ = zmq.curve_keypair()
    wrong = Client(info, (other_public, zmq.curve_keypair()))
    try:
        assert good.request("shell", "kernel_info_request", {}, timeout_ms=20000)
        for bad in (plain, wrong):
            # No handshake, so nothing is delivered either way.
            assert bad.request("shell", "kernel_info_request", {}, timeout_ms=1000) is None
            assert bad.request("control", "kernel_info_request", {}, timeout_ms=500) is None
            assert bad.iopub(timeout_ms=500) is None
            try:
                bad.socks["hb"].send(b"ping")
            except zmq.Again:
                pass
            assert bad.socks["hb"].poll(500) == 0
        assert proc.poll() is None
        assert good.request("shell", "kernel_info_request", {})["content"]["status"] == "ok"
        good.request("control", "shutdown_request", {"restart": False})
        assert proc.wait(timeout=30) == 0
    finally:
        for c in (good, plain, wrong):
            c.close()


@pytest.mark.parametrize("extra,words", [
    ({"curve_publickey": "x" * 40}, "curve_publickey without curve_secretkey"),
    ({"curve_publickey": "#" * 40, "curve_secretkey": "#" * 40}, "not a Z85 CurveZMQ key"),
    ({"curve_publickey": zmq.curve_keypair()[0].decode(),
      "curve_secretkey": zmq.curve_keypair()[1].decode()}, "not the public key"),
])
def test_bad_keys_refused_at_start(tmp_path, extra, words):
    # A kernel asked for encryption never falls back to plain text.
    path, _ = write_conn(tmp_path, **extra)
    r = subprocess.run(kernel_argv(path), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert words in r.stderr, r.stderr


def test_no_keys_means_plain_transport(tmp_path):
    path, info = write_conn(tmp_path)
    proc = subprocess.Popen(kernel_argv(path), stderr=subprocess.DEVNULL)
    c = Client(info, None)
    try:
        assert c.request("shell", "kernel_info_request", {}, timeout_ms=20000)
        c.request("control", "shutdown_request", {"restart": False})
        assert proc.wait(timeout=30) == 0
    finally:
        c.close()
        if proc.poll() is None:
            proc.kill()
