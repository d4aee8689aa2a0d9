"""Writes seed inputs for fuzz_http1 into a folder, each starting with
the mode byte of fuzz_http1.c (0: cleartext, 1: inside TLS with ALPN
http/1.1): requests for each path of the test handler, keep-alive and
pipelining, chunked bodies with extensions and trailers, Expect:
100-continue, HTTP/1.0, Upgrade: h2c, and requests over the fuzz
target's limits (4 KiB of head, 16 KiB of body). The committed corpus
tests/fuzz/corpus/fuzz_http1/ was made by this script.
Usage: make_http1_seeds.py DIR"""
import os
import sys

MODE_PLAIN, MODE_TLS = range(2)


def request(method, path, headers=(), body=b"", version=b"HTTP/1.1"):
    head = b"%s %s %s\r\nHost: fuzz\r\n" % (method, path, version)
    for name, value in headers:
        head += b"%s: %s\r\n" % (name, value)
    if body and not any(n.lower() == b"transfer-encoding" for n, _ in headers):
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def chunked(*pieces, trailers=b""):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + \
        b"0\r\n" + trailers + b"\r\n"


SEEDS = {
    "get": request(b"GET", b"/hello?x=1"),
    "head": request(b"HEAD", b"/echo"),
    "headers": request(b"GET", b"/headers", [(b"X-Mixed", b"Case"),
                                             (b"Cookie", b"a=1")]),
    "echo": request(b"POST", b"/echo", [(b"Content-Type", b"text/plain")],
                    b"hello body"),
    "echo_chunked": request(b"POST", b"/echo",
                            [(b"Transfer-Encoding", b"chunked")],
                            chunked(b"hello", b" ", b"world")),
    "chunk_extension_trailer": request(
        b"PUT", b"/echo", [(b"Transfer-Encoding", b"chunked"),
                           (b"TE", b"trailers")],
        b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
    "trailers": request(b"GET", b"/trailers", [(b"TE", b"trailers")]),
    "stream": request(b"GET", b"/stream/3"),
    "big": request(b"GET", b"/big/200000"),
    "cancels": request(b"GET", b"/cancels"),
    "early": request(b"POST", b"/early", body=b"late body") +
    request(b"GET", b"/after"),
    "early_expect": request(b"POST", b"/early",
                            [(b"Expect", b"100-continue")], b"late"),
    "refuse": request(b"POST", b"/refuse", body=b"x" * 100),
    "pipelined": request(b"GET", b"/a") + request(b"POST", b"/echo",
                                                    body=b"second") +
    request(b"GET", b"/c", [(b"Connection", b"close")]),
    "expect": request(b"POST", b"/echo", [(b"Expect", b"100-continue")],
                      b"y" * 2000),
    "expect_too_big": request(b"POST", b"/echo",
                              [(b"Expect", b"100-continue"),
                               (b"Content-Length", b"99999")]),
    "body_too_big": request(b"POST", b"/echo",
                            [(b"Transfer-Encoding", b"chunked")],
                            chunked(b"z" * 9000, b"z" * 9000)),
    "head_too_big": request(b"GET", b"/", [(b"X-Big", b"b" * 5000)]),
    "http10": request(b"GET", b"/stream/2", version=b"HTTP/1.0"),
    "http10_keepalive": request(b"GET", b"/a", [(b"Connection",
                                                  b"keep-alive")],
                                version=b"HTTP/1.0") +
    request(b"GET", b"/b", version=b"HTTP/1.0"),
    "upgrade_h2c": request(b"GET", b"/a", [
        (b"Connection", b"Upgrade, HTTP2-Settings"), (b"Upgrade", b"h2c"),
        (b"HTTP2-Settings", b"AAMAAABkAAQAoAAAAAIAAAAA")]) +
    request(b"GET", b"/b"),
    "absolute_form": b"GET http://fuzz:80/abs?q=1 HTTP/1.1\r\n\r\n",
    "no_host": b"GET / HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "connect": b"CONNECT fuzz:443 HTTP/1.1\r\nHost: fuzz:443\r\n\r\n",
    "garbage": b"\x00\x01garbage\r\n\r\n",
    "partial": b"GET /partial HTTP/1.1\r\nHost: fu",
}


def main(folder):
    os.makedirs(folder, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(folder, "seed_" + name), "wb") as f:
            f.write(bytes([MODE_PLAIN]) + data)
    for name in ("get", "pipelined", "echo_chunked"):
        with open(os.path.join(folder, "seed_tls_" + name), "wb") as f:
            f.write(bytes([MODE_TLS]) + SEEDS[name])


if __name__ == "__main__":
    main(sys.argv[1])
