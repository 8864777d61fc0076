#!/usr/bin/env python3
"""Memory of quell with many sessions in the middle of large messages (issue 11 §1).

Opens SESSIONS SMTP sessions to a running quell, has each send SIZE bytes of DATA (without the
end marker) concurrently, samples quell's VmRSS / VmHWM, then ends every message (each must get
250) and reports. quell must relay from 127.0.0.1 and have room for SESSIONS * SIZE bytes in
its spool.

usage: session_memory.py HOST:PORT QUELL_PID [SESSIONS=500] [SIZE_MIB=25]
"""
import asyncio
import sys
import time


def mem(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                fields[k] = int(v.split()[0]) * 1024
    return fields


async def reply(reader):
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError("connection closed: " + repr(lines))
        lines.append(line.decode(errors="replace"))
        if len(line) < 4 or line[3:4] != b"-":
            return "".join(lines)


async def expect(reader, writer, line, code):
    writer.write(line.encode() + b"\r\n")
    r = await reply(reader)
    if not r.startswith(code):
        raise RuntimeError(f"{line!r}: {r!r}")


async def session(host, port, i, size, started, release):
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    await reply(reader)
    await expect(reader, writer, "EHLO bench.test", "250")
    await expect(reader, writer, "MAIL FROM:<bench@bench.test>", "250")
    await expect(reader, writer, f"RCPT TO:<m{i}@example.net>", "250")
    await expect(reader, writer, "DATA", "354")
    head = f"From: bench@bench.test\r\nTo: m{i}@example.net\r\nSubject: big {i}\r\n\r\n".encode()
    line = b"b" * 76 + b"\r\n"
    chunk = line * ((1 << 20) // len(line))
    writer.write(head)
    sent = len(head)
    while sent < size:
        writer.write(chunk)
        sent += len(chunk)
        await writer.drain()
    started.append(i)
    await release.wait()
    writer.write(b".\r\n")
    r = await reply(reader)
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()
    return r.startswith("250")


async def main():
    hostport, pid = sys.argv[1], int(sys.argv[2])
    sessions = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    size = (int(sys.argv[4]) if len(sys.argv) > 4 else 25) << 20
    host, port = hostport.rsplit(":", 1)
    before = mem(pid)
    started, release = [], asyncio.Event()
    t0 = time.monotonic()
    tasks = [asyncio.create_task(session(host, int(port), i, size, started, release))
             for i in range(sessions)]
    peak_rss = 0
    while len(started) < sessions:
        if any(t.done() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()
        peak_rss = max(peak_rss, mem(pid)["VmRSS"])
        await asyncio.sleep(0.2)
    during = mem(pid)
    sent_s = time.monotonic() - t0
    release.set()
    ok = await asyncio.gather(*tasks)
    after = mem(pid)
    mib = lambda b: f"{b / (1 << 20):.0f} MiB"
    print(f"sessions={sessions} size={size >> 20} MiB each, {sessions * size / (1 << 30):.1f} GiB "
          f"sent in {sent_s:.0f} s")
    print(f"RSS before {mib(before['VmRSS'])}, peak sampled while sending {mib(peak_rss)}, "
          f"with all mid-message {mib(during['VmRSS'])}, after {mib(after['VmRSS'])}; "
          f"VmHWM {mib(after['VmHWM'])}")
    print(f"250 for {sum(ok)}/{sessions}")
    sys.exit(0 if all(ok) else 1)


asyncio.run(main())
