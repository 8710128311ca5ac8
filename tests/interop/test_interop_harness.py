"""The harness's own logic, without a guest (runs in the default suite): network isolation of
the qemu command line, accelerator choice, result parsing and the wire decoder."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from tests.interop.guest import Accel, Forward, choose_accelerator, netdev_spec, qemu_command
from tests.interop.image import GuestImage
from tests.interop.results import parse_checks
from tests.interop.rpcwatch import RpcWatchRelay


def _image(tmp_path: Path) -> GuestImage:
    return GuestImage(tmp_path, tmp_path / "vmlinuz", tmp_path / "initrd.img", tmp_path / "rootfs.img", "6.1")


def test_qemu_network_is_restricted_to_loopback_forwards(tmp_path: Path) -> None:
    cmd = qemu_command(_image(tmp_path), tmp_path, [Forward(2049, 40000), Forward(88, 40001)],
                       choose_accelerator({"SECURENFS_INTEROP_ACCEL": "tcg"}), 1024, 2, tmp_path / "c")
    assert "-nodefaults" in cmd
    net = cmd[cmd.index("-netdev") + 1]
    assert "restrict=on" in net and "hostfwd" not in net
    rules = [p for p in net.split(",") if p.startswith("guestfwd=")]
    assert rules == ["guestfwd=tcp:10.0.2.100:2049-cmd:socat STDIO TCP4:127.0.0.1:40000",
                     "guestfwd=tcp:10.0.2.100:88-cmd:socat STDIO TCP4:127.0.0.1:40001"]
    assert cmd.count("-netdev") == 1  # no second, unrestricted NIC
    drive = cmd[cmd.index("-drive") + 1]
    assert "snapshot=on" in drive  # the cached image is never written


@pytest.mark.parametrize("bad", [Forward(0, 2049), Forward(2049, 70000)])
def test_bad_forward_port_is_refused(bad: Forward) -> None:
    with pytest.raises(ValueError, match="bad port"):
        netdev_spec([bad])


def test_accelerator_can_be_forced_and_always_has_a_reason() -> None:
    assert choose_accelerator({"SECURENFS_INTEROP_ACCEL": "tcg"}).accel is Accel.TCG
    assert choose_accelerator({"SECURENFS_INTEROP_ACCEL": "kvm"}).accel is Accel.KVM
    auto = choose_accelerator({})
    assert auto.reason and str(auto).startswith(auto.accel.value)
    if Path("/sys/module/kvm_pvm").is_dir():
        assert auto.accel is Accel.TCG and "kvm_pvm" in auto.reason


def test_result_lines_are_parsed_with_output_and_needs() -> None:
    out = ("noise\n=== a\nhello\n@@NEED OPEN\n@@RESULT a PASS 1.0s\n"
           "=== b\nmount failed\n@@RESULT b FAIL rc=1 2.0s\n=== c\n@@RESULT c SKIP 0.1s\n=== d\nhung\n")
    checks = parse_checks(out)
    assert set(checks) == {"a", "b", "c"}  # d never finished: absent, so it is reported as not run
    assert checks["a"].status == "PASS" and checks["a"].needs == ["OPEN"] and checks["a"].output == ["hello"]
    assert checks["b"].status == "FAIL" and checks["b"].detail == "rc=1 2.0s"
    assert checks["c"].status == "SKIP"


def _record(body: bytes) -> bytes:
    return struct.pack(">I", 0x80000000 | len(body)) + body


def _opaque(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b + b"\0" * ((4 - len(b) % 4) % 4)


def test_relay_passes_bytes_and_names_the_failing_operation() -> None:
    """A fake server answers one COMPOUND (SEQUENCE, PUTFH, OPEN) with OPEN -> NFS4ERR_NOTSUPP."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    call = (struct.pack(">IIIIII", 7, 0, 2, 100003, 4, 1) + struct.pack(">I", 1) + _opaque(b"\0" * 20)
            + struct.pack(">I", 0) + _opaque(b"")
            + _opaque(b"") + struct.pack(">II", 1, 3)
            + struct.pack(">I", 53) + b"\0" * 32 + struct.pack(">I", 22) + _opaque(b"fh")
            + struct.pack(">I", 18) + b"\1\2\3\4")
    reply = (struct.pack(">III", 7, 1, 0) + struct.pack(">I", 0) + _opaque(b"") + struct.pack(">I", 0)
             + struct.pack(">I", 10004) + _opaque(b"") + struct.pack(">I", 3)
             + struct.pack(">I", 53) + struct.pack(">I", 0) + b"\0" * 36
             + struct.pack(">II", 22, 0) + struct.pack(">II", 18, 10004))

    def serve() -> None:
        conn, _ = srv.accept()
        data = b""
        while len(data) < len(_record(call)):
            data += conn.recv(65536)
        conn.sendall(_record(reply))
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    relay = RpcWatchRelay(srv.getsockname()[1])
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as c:
            c.sendall(_record(call))
            got = b""
            while len(got) < len(_record(reply)):
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
        assert got == _record(reply)  # untouched
        t.join(10)
        # The relay decodes after forwarding: give its thread a moment.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (relay.watch.compounds and relay.watch.compounds[0].status):
            time.sleep(0.02)
        compounds = list(relay.watch.compounds)
        assert compounds and compounds[0].ops == ["SEQUENCE", "PUTFH", "OPEN"]
        assert compounds[0].failed_op == "OPEN"
        assert "OPEN -> NFS4ERR_NOTSUPP" in compounds[0].describe()
    finally:
        relay.close()
        srv.close()
