"""End-to-end: TLS and mTLS on the shared port (python3-grpcio), and the
raw HTTP/2 exchange as nghttp (nghttp2-client) shows it."""
import os
import struct
import subprocess
import tempfile

import grpc
import pytest

import echo_pb2
from conftest import start_server


def make_pki(directory):
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a
    client certificate, all signed by the CA."""
    def run(*args):
        subprocess.run(args, check=True, cwd=directory, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=jobhub test CA", "-keyout", "ca.key", "-out", "ca.pem")
    with open(os.path.join(directory, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, extra in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
            "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr")
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", name + ".pem", *extra)
    return {n: os.path.join(directory, n) for n in os.listdir(directory)}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def echo(channel, text):
    call = channel.unary_unary("/jobhub.test.Echo/Unary",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=echo_pb2.EchoResponse.FromString)
    return call(echo_pb2.EchoRequest(message=text), timeout=5).message


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_tls_and_h2c_on_one_port(pki):
    # Cleartext next to TLS only when asked for (test_listen_hardening.py).
    server = start_server(["--tls-cert", pki["server.pem"],
                           "--tls-key", pki["server.key"], "--allow-plaintext"])
    try:
        credentials = grpc.ssl_channel_credentials(read(pki["ca.pem"]))
        with grpc.secure_channel(server.address, credentials) as ch:
            assert echo(ch, "over tls") == "over tls"
        with grpc.insecure_channel(server.address) as ch:
            assert echo(ch, "over h2c") == "over h2c"
    finally:
        assert server.stop() == 0


def test_tls_refuses_an_untrusted_server_certificate(pki, tmp_path):
    server = start_server(["--tls-cert", pki["server.pem"],
                           "--tls-key", pki["server.key"]])
    try:
        other = make_pki(str(tmp_path))
        credentials = grpc.ssl_channel_credentials(read(other["ca.pem"]))
        with grpc.secure_channel(server.address, credentials) as ch:
            with pytest.raises(grpc.RpcError) as error:
                echo(ch, "x")
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert server.stop() == 0


def test_mtls_requires_a_client_certificate(pki):
    server = start_server(["--tls-cert", pki["server.pem"],
                           "--tls-key", pki["server.key"],
                           "--tls-client-ca", pki["ca.pem"]])
    try:
        without = grpc.ssl_channel_credentials(read(pki["ca.pem"]))
        with grpc.secure_channel(server.address, without) as ch:
            with pytest.raises(grpc.RpcError) as error:
                echo(ch, "x")
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        with_cert = grpc.ssl_channel_credentials(
            read(pki["ca.pem"]), read(pki["client.key"]), read(pki["client.pem"]))
        with grpc.secure_channel(server.address, with_cert) as ch:
            assert echo(ch, "mutual") == "mutual"
    finally:
        assert server.stop() == 0


def test_server_fails_fast_on_a_bad_certificate(tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(RuntimeError) as error:
        start_server(["--tls-cert", str(bogus), "--tls-key", str(bogus)])
    assert "bogus.pem" in str(error.value)


def nghttp(server, request, headers=()):
    """POSTs one framed EchoRequest with nghttp -v; returns its output."""
    body = request.SerializeToString()
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(struct.pack(">BI", 0, len(body)) + body)
    args = ["nghttp", "-v", "-d", f.name, "-H", "content-type: application/grpc",
            "-H", "te: trailers"]
    for header in headers:
        args += ["-H", header]
    result = subprocess.run(args + ["http://%s/jobhub.test.Echo/Unary" % server.address],
                            capture_output=True, timeout=20)
    os.unlink(f.name)
    return result.stdout.decode(errors="replace")


def test_response_is_gzip_when_the_client_accepts_it(server):
    out = nghttp(server, echo_pb2.EchoRequest(payload=b"z" * 65536),
                 ["grpc-accept-encoding: gzip"])
    assert "grpc-encoding: gzip" in out
    assert "grpc-status: 0" in out
    # The DATA carrying the message is much smaller than 64 KiB.
    data_lengths = [int(line.split("length=")[1].split(",")[0])
                    for line in out.splitlines()
                    if "recv DATA frame" in line]
    assert sum(data_lengths) < 4096


def test_no_gzip_without_grpc_accept_encoding(server):
    out = nghttp(server, echo_pb2.EchoRequest(payload=b"z" * 65536))
    assert "grpc-encoding: gzip" not in out
    assert "grpc-status: 0" in out


def test_unpadded_bin_metadata_in_padded_out(server):
    out = nghttp(server, echo_pb2.EchoRequest(echo_metadata=True),
                 ["x-echo-k-bin: AQI"])  # bytes 01 02, without padding
    assert "x-echo-k-bin: AQI=" in out
    assert "x-trailer-k-bin: AQI=" in out


def test_immediate_error_is_trailers_only(server):
    out = nghttp(server, echo_pb2.EchoRequest(fail_code=7, fail_message="no"))
    headers_frames = [l for l in out.splitlines() if "recv HEADERS frame" in l]
    assert len(headers_frames) == 1
    flags = int(headers_frames[0].split("flags=")[1].split(",")[0], 16)
    assert flags & 0x1, "END_STREAM on the only HEADERS frame"
    assert "recv DATA frame" not in out
    assert "grpc-status: 7" in out and "grpc-message: no" in out
