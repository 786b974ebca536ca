#!/usr/bin/env python3
"""SMTP sink for the integration tests (tests/api/sinks.rs starts it).

Usage: smtp_sink.py PORT DIR

Listens on 127.0.0.1:PORT (0 picks a free port) with aiosmtpd, accepts every message,
and writes message number N as DIR/N.eml (the raw RFC 5322 bytes) and DIR/N.json (the
envelope, the headers and the decoded leaf parts, as Python's email package reads them,
written atomically). Prints "ready <port>" once it listens, then runs until killed.
"""

import asyncio
import email
import email.policy
import itertools
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        number = next(self.numbers)
        raw = envelope.original_content or envelope.content
        with open(os.path.join(self.directory, f"{number}.eml"), "wb") as f:
            f.write(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [
            {"content_type": part.get_content_type(), "body": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content_type": message.get_content_type(),
            "headers": [[name, str(value)] for name, value in message.items()],
            "parts": parts,
        }
        path = os.path.join(self.directory, f"{number}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(summary, f)
        os.replace(path + ".tmp", path)
        return "250 OK"


async def main(port, directory):
    loop = asyncio.get_running_loop()
    handler = Sink(directory)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test"), host="127.0.0.1", port=port
    )
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
