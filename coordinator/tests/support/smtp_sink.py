"""A real SMTP server for the coordinator's notification tests (aiosmtpd,
Debian's python3-aiosmtpd). Every accepted message is written to OUTDIR as
one JSON file: envelope sender and recipients, the raw message, and the
user name it authenticated as.

usage: smtp_sink.py PORT OUTDIR MODE [CERT KEY [USER PASSWORD]]
  MODE: plain | starttls | tls
Prints "ready" once listening; runs until killed.
"""

import json
import os
import ssl
import sys
import threading
import warnings

warnings.filterwarnings("ignore")

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, outdir, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cert = key = user = password = None
if len(sys.argv) >= 6:
    cert, key = sys.argv[4], sys.argv[5]
if len(sys.argv) >= 8:
    user, password = sys.argv[6], sys.argv[7]

counter = [0]
lock = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            counter[0] += 1
            n = counter[0]
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "auth": session.auth_data if isinstance(session.auth_data, str) else None,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
        }
        tmp = os.path.join(outdir, f".{os.getpid()}-{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(outdir, f"{os.getpid()}-{n}.json"))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)


def context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


kwargs = {}
if user is not None:
    kwargs.update(authenticator=authenticator, auth_required=True)
if mode == "starttls":
    kwargs.update(tls_context=context(), require_starttls=True)
elif mode == "tls":
    # TLS from the first byte: aiosmtpd only counts STARTTLS as TLS for AUTH.
    kwargs.update(ssl_context=context(), auth_require_tls=False)

controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print("ready", flush=True)
threading.Event().wait()
