#!/usr/bin/env python3
"""The shop API: a small HTTP service written with the Python standard library only.

It speaks to PostgreSQL (frontend/backend protocol 3.0, simple queries) and to
Redis (RESP) over plain sockets, so it needs no driver and no package.

Environment (orch sets all of it):
  PORT           port to listen on; the address is API_HOST (default 127.0.0.1)
  ORCH_INSTANCE  number of this process among the replicas; shown in every answer
  DATABASE_URL   postgres://USER[:PASSWORD]@HOST:PORT/DBNAME
                 (authentication: trust, password, md5 or SCRAM-SHA-256;
                 the password is used as given, without SASLprep)
  REDIS_URL      redis://[[USER]:PASSWORD@]HOST:PORT[/DB]

Endpoints (all answer JSON):
  GET  /               this list
  GET  /health         liveness of the process itself (no database round trip)
  GET  /items          every item, oldest first
  POST /items?name=X   add an item; the name may also come as a form field or a
                       JSON body {"name": "X"}; answers 201 and the new row
  GET  /hits           increment the Redis counter shop:hits and return it
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTANCE = int(os.environ.get("ORCH_INSTANCE", "0"))
STARTED = time.time()


def log(message):
    print(f"api[{INSTANCE}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# PostgreSQL

class PgError(Exception):
    """An ErrorResponse from the server; the connection itself is still usable."""

    def __init__(self, fields):
        self.fields = fields
        self.code = fields.get("C", "")
        super().__init__(f"{fields.get('S', 'ERROR')}: {fields.get('M', '?')} (SQLSTATE {self.code})")


# Type OIDs whose text form is turned into a Python value; the rest stay text.
PG_INT_TYPES = {20, 21, 23, 26}  # int8, int2, int4, oid
PG_BOOL = 16


class PgConnection:
    """One connection to PostgreSQL. Not thread-safe: use it from one thread at a time."""

    PROTOCOL_3_0 = 196608

    def __init__(self, url, timeout=10.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"not a postgres:// URL: {url!r}")
        self.user = urllib.parse.unquote(u.username or "postgres")
        self.password = urllib.parse.unquote(u.password) if u.password is not None else None
        dbname = urllib.parse.unquote(u.path.lstrip("/")) or self.user
        self.params = {}
        self.status = b"I"  # transaction status from the last ReadyForQuery
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")
        try:
            self._startup(dbname)
        except BaseException:
            self.close()
            raise

    # -- framing

    def _read(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("PostgreSQL closed the connection")
        return data

    def _receive(self):
        kind = self._read(1)
        (length,) = struct.unpack("!I", self._read(4))
        return kind, self._read(length - 4)

    def _send(self, kind, payload=b""):
        self.sock.sendall(kind + struct.pack("!I", len(payload) + 4) + payload)

    @staticmethod
    def _fields(body):
        """The fields of an ErrorResponse or NoticeResponse."""
        fields = {}
        for part in body.split(b"\0"):
            if part:
                fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
        return fields

    # -- start-up and authentication

    def _startup(self, dbname):
        params = {
            "user": self.user,
            "database": dbname,
            "application_name": f"shop-api-{INSTANCE}",
            "client_encoding": "UTF8",
        }
        body = struct.pack("!I", self.PROTOCOL_3_0)
        body += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        while True:
            kind, body = self._receive()
            if kind == b"R":
                self._authenticate(body)
            elif kind == b"S":
                name, value, _ = body.split(b"\0", 2)
                self.params[name.decode()] = value.decode()
            elif kind == b"E":
                raise PgError(self._fields(body))
            elif kind == b"Z":
                self.status = body[:1]
                break
            # BackendKeyData (K) and NoticeResponse (N) need nothing.
        if self.params.get("standard_conforming_strings") != "on":
            # literal() relies on it: with it on, a backslash is an ordinary character.
            raise ConnectionError("the server has standard_conforming_strings off")

    def _need_password(self):
        if self.password is None:
            raise ConnectionError("the server asks for a password and DATABASE_URL has none")
        return self.password.encode()

    def _authenticate(self, body):
        (code,) = struct.unpack("!I", body[:4])
        if code == 0:  # AuthenticationOk
            return
        if code == 3:  # AuthenticationCleartextPassword
            self._send(b"p", self._need_password() + b"\0")
        elif code == 5:  # AuthenticationMD5Password
            salt = body[4:8]
            inner = hashlib.md5(self._need_password() + self.user.encode()).hexdigest()
            digest = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
            self._send(b"p", digest.encode() + b"\0")
        elif code == 10:  # AuthenticationSASL
            mechanisms = [m.decode() for m in body[4:].split(b"\0") if m]
            if "SCRAM-SHA-256" not in mechanisms:
                raise ConnectionError(f"no supported SASL mechanism among {mechanisms}")
            self._scram_sha_256()
        else:
            raise ConnectionError(f"unsupported authentication request {code}")

    def _scram_sha_256(self):
        """RFC 5802/7677 as PostgreSQL uses it (no channel binding)."""
        password = self._need_password()
        nonce = base64.b64encode(os.urandom(18)).decode()
        client_first_bare = f"n=,r={nonce}"  # PostgreSQL takes the user from the start-up packet
        first = f"n,,{client_first_bare}".encode()
        self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)

        kind, body = self._receive()
        if kind == b"E":
            raise PgError(self._fields(body))
        if kind != b"R" or struct.unpack("!I", body[:4])[0] != 11:  # AuthenticationSASLContinue
            raise ConnectionError("unexpected message during SCRAM authentication")
        server_first = body[4:].decode()
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        if not attrs["r"].startswith(nonce):
            raise ConnectionError("SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = f"c=biws,r={attrs['r']}"  # biws: base64 of "n,,"
        auth_message = f"{client_first_bare},{server_first},{final_bare}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._send(b"p", f"{final_bare},p={base64.b64encode(proof).decode()}".encode())

        kind, body = self._receive()
        if kind == b"E":
            raise PgError(self._fields(body))
        if kind != b"R" or struct.unpack("!I", body[:4])[0] != 12:  # AuthenticationSASLFinal
            raise ConnectionError("unexpected message at the end of SCRAM authentication")
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
        if not hmac.compare_digest(body[4:].decode(), f"v={expected}"):
            raise ConnectionError("SCRAM: the server's signature is wrong")

    # -- queries

    def query(self, sql):
        """Run SQL with the simple query protocol. Returns the rows of the last
        statement that returned any, as dicts; raises PgError on an SQL error."""
        self._send(b"Q", sql.encode() + b"\0")
        columns, rows, result, error = [], [], [], None
        while True:
            kind, body = self._receive()
            if kind == b"T":  # RowDescription
                (count,) = struct.unpack("!H", body[:2])
                columns, pos = [], 2
                for _ in range(count):
                    end = body.index(b"\0", pos)
                    name = body[pos:end].decode()
                    type_oid = struct.unpack("!I", body[end + 7:end + 11])[0]
                    columns.append((name, type_oid))
                    pos = end + 19  # name\0, table oid, column, type, size, modifier, format
                rows = []
            elif kind == b"D":  # DataRow
                (count,) = struct.unpack("!H", body[:2])
                pos, row = 2, {}
                for name, type_oid in columns[:count]:
                    (size,) = struct.unpack("!i", body[pos:pos + 4])
                    pos += 4
                    if size < 0:
                        row[name] = None
                        continue
                    text = body[pos:pos + size].decode()
                    pos += size
                    if type_oid in PG_INT_TYPES:
                        row[name] = int(text)
                    elif type_oid == PG_BOOL:
                        row[name] = text == "t"
                    else:
                        row[name] = text
                rows.append(row)
            elif kind == b"C":  # CommandComplete
                if columns:
                    result = rows
                columns = []
            elif kind == b"E":
                error = PgError(self._fields(body))
            elif kind == b"S":
                name, value, _ = body.split(b"\0", 2)
                self.params[name.decode()] = value.decode()
            elif kind == b"Z":  # ReadyForQuery: I idle, T in a transaction, E failed transaction
                self.status = body[:1]
                break
            # EmptyQueryResponse (I) and NoticeResponse (N) need nothing.
        if error:
            raise error
        return result

    def close(self):
        with contextlib.suppress(OSError):
            self._send(b"X")  # Terminate
        with contextlib.suppress(OSError):
            self.sock.close()


def literal(value):
    """An SQL literal. Quoting by doubling quotes is sound because the
    connection insists on standard_conforming_strings=on."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if "\0" in text:
        raise ValueError("text with a NUL character cannot be stored")
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------
# Redis

class RedisError(Exception):
    """An error reply; the connection itself is still usable."""


class RedisConnection:
    def __init__(self, url, timeout=5.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "redis":
            raise ValueError(f"not a redis:// URL: {url!r}")
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")
        self.status = b"I"  # for the pool: always reusable
        try:
            if u.password:
                user = urllib.parse.unquote(u.username or "")
                password = urllib.parse.unquote(u.password)
                if user:
                    self.command("AUTH", user, password)
                else:
                    self.command("AUTH", password)
            db = u.path.lstrip("/")
            if db and db != "0":
                self.command("SELECT", db)
        except BaseException:
            self.close()
            raise

    def command(self, *args):
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.rfile.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("Redis closed the connection")
            return data[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ConnectionError(f"unexpected Redis reply {line[:40]!r}")

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


# --------------------------------------------------------------------------
# Connection pools

class Pool:
    """Keeps a few idle connections. A connection that failed at the socket
    level, or was left inside a transaction, is thrown away. When a reused
    connection turns out to be dead (the server restarted since), the
    operation is tried once more on a fresh one."""

    def __init__(self, connect, keep=4):
        self.connect = connect
        self.keep = keep
        self.idle = []
        self.lock = threading.Lock()

    def run(self, operation):
        for attempt in (1, 2):
            with self.lock:
                conn = self.idle.pop() if self.idle else None
            reused = conn is not None
            if conn is None:
                conn = self.connect()
            try:
                result = operation(conn)
            except (OSError, ConnectionError):
                conn.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                self._release(conn)
                raise
            self._release(conn)
            return result

    def _release(self, conn):
        with self.lock:
            if conn.status == b"I" and len(self.idle) < self.keep:
                self.idle.append(conn)
                return
        conn.close()

    def close(self):
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://shop@127.0.0.1:5432/shop")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
db = Pool(lambda: PgConnection(DATABASE_URL))
cache = Pool(lambda: RedisConnection(REDIS_URL))

# Both processes may create the table at the same moment; the advisory lock
# serialises them (CREATE TABLE IF NOT EXISTS alone is not safe under concurrency).
SCHEMA = """
BEGIN;
SELECT pg_advisory_xact_lock(7411);
CREATE TABLE IF NOT EXISTS items (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  integer NOT NULL
);
COMMIT;
"""
schema_ready = threading.Event()
schema_lock = threading.Lock()


def ensure_schema():
    if schema_ready.is_set():
        return
    with schema_lock:
        if not schema_ready.is_set():
            db.run(lambda conn: conn.query(SCHEMA))
            schema_ready.set()
            log("schema ready")


# --------------------------------------------------------------------------
# HTTP

ITEM_COLUMNS = "id, name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, created_by"


def list_items():
    ensure_schema()
    return db.run(lambda conn: conn.query(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id"))


def add_item(name):
    ensure_schema()
    rows = db.run(lambda conn: conn.query(
        f"INSERT INTO items (name, created_by) VALUES ({literal(name)}, {INSTANCE}) RETURNING {ITEM_COLUMNS}"
    ))
    return rows[0]


def hit():
    return cache.run(lambda conn: conn.command("INCR", "shop:hits"))


class Server(ThreadingHTTPServer):
    daemon_threads = True     # do not wait for idle keep-alive connections on exit
    request_queue_size = 128  # listen backlog (the default is 5)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so nginx can reuse upstream connections
    server_version = "shop-api/1"
    timeout = 60  # idle keep-alive connections are closed after this

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            self.answer(200, {"endpoints": [
                "GET /health", "GET /items", "POST /items?name=NAME", "GET /hits"]})
        elif path == "/health":
            self.answer(200, {"status": "ok", "port": self.server.server_address[1],
                              "uptime_s": round(time.time() - STARTED, 1)})
        elif path == "/items":
            self.guarded(lambda: (200, {"items": list_items()}))
        elif path == "/hits":
            self.guarded(lambda: (200, {"hits": hit()}))
        else:
            self.answer(404, {"error": f"no such endpoint: GET {path}"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= 65536:
            self.answer(400, {"error": "bad or too large Content-Length"})
            self.close_connection = True
            return
        body = self.rfile.read(length)
        if url.path != "/items":
            self.answer(404, {"error": f"no such endpoint: POST {url.path}"})
            return
        name = urllib.parse.parse_qs(url.query).get("name", [None])[0]
        if name is None and body:
            try:
                if (self.headers.get("Content-Type") or "").startswith("application/json"):
                    name = json.loads(body).get("name")
                else:
                    name = urllib.parse.parse_qs(body.decode()).get("name", [None])[0]
            except (ValueError, AttributeError, UnicodeDecodeError):
                self.answer(400, {"error": "the body is neither JSON nor a form"})
                return
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\0" in name:
            self.answer(400, {"error": "give a name of 1 to 200 characters: POST /items?name=NAME"})
            return
        self.guarded(lambda: (201, {"item": add_item(name.strip())}))

    def guarded(self, work):
        """Run work(); a database or cache that cannot be reached is a 503."""
        try:
            status, payload = work()
        except (OSError, ConnectionError, PgError, RedisError) as e:
            log(f"{self.command} {self.path}: {type(e).__name__}: {e}")
            status, payload = 503, {"error": f"{type(e).__name__}: {e}"}
        self.answer(status, payload)

    def answer(self, status, payload):
        data = json.dumps({"instance": INSTANCE, **payload}).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        log(f"{self.address_string()} {fmt % args}")


def main():
    host = os.environ.get("API_HOST", "127.0.0.1")
    port = int(os.environ["PORT"])
    server = Server((host, port), Handler)

    def stop(signum, _frame):
        log(f"{signal.Signals(signum).name}: stopping")
        # shutdown() waits for serve_forever() to return, so not from this thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    try:
        ensure_schema()
    except Exception as e:  # not fatal: retried on the first request that needs it
        log(f"database not usable yet ({e}); will retry")
    log(f"listening on http://{host}:{port}")
    server.serve_forever()
    server.server_close()
    db.close()
    cache.close()
    log("stopped")


if __name__ == "__main__":
    main()
