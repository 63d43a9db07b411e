#!/usr/bin/python3
# psycopg 3 (Debian python3-psycopg) through PgLynx with prepare_threshold=0:
# every statement is prepared server-side (named Parse), and after a failed
# transaction's ROLLBACK psycopg sends DEALLOCATE ALL through the extended
# protocol. Run with Debian's interpreter (/usr/bin/python3), connection from
# PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE. Prints `ok CHECK` or
# `not ok CHECK: error` per check (see tests/drivers.test.ts); exit 1 if any
# check failed. `dealloc` as argv[1] runs only BEGIN / failing statement /
# ROLLBACK (the cross-driver DEALLOCATE ALL case).
import math
import os
import sys
import threading

import psycopg

TABLE = "drv_psycopg3"
CONNS, ITERATIONS = 4, 50
failed = False


def connect():
    return psycopg.connect(
        host=os.environ["PGHOST"], port=os.environ["PGPORT"], user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"], dbname=os.environ["PGDATABASE"],
        prepare_threshold=0, connect_timeout=10,
    )


def check(name, fn):
    global failed
    try:
        fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # report and carry on with the next check
        failed = True
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"not ok {name}: {msg}", flush=True)


def dealloc():
    with connect() as c:
        c.execute("SELECT %s::int AS one", [1]).fetchone()
        try:
            c.execute("SELECT 1 / %s::int", [0])
            raise AssertionError("division by zero did not fail")
        except psycopg.errors.DivisionByZero:
            pass
        c.rollback()  # ROLLBACK, then DEALLOCATE ALL (extended protocol)
        assert c.execute("SELECT %s::int AS v", [7]).fetchone()[0] == 7


def setup():
    with connect() as c:
        c.autocommit = True
        c.execute(f"DROP TABLE IF EXISTS {TABLE}")
        c.execute(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, worker int NOT NULL, i int NOT NULL, kind text NOT NULL, emb real[])")


def worker(w, errors):
    try:
        with connect() as c:
            for i in range(ITERATIONS):
                s, t = c.execute("SELECT %s::int + %s::int AS s, %s::text AS t", [w, i, f"w{w}"]).fetchone()
                assert (s, t) == (w + i, f"w{w}"), f"worker {w} iteration {i}: got {(s, t)}"
                c.execute(f"INSERT INTO {TABLE} (worker, i, kind) VALUES (%s, %s, 'tx')", [w, i])
                c.commit()
                if i % 10 == 9:
                    c.execute(f"INSERT INTO {TABLE} (worker, i, kind) VALUES (%s, %s, 'rolled_back')", [w, i])
                    try:
                        c.execute("SELECT 1 / %s::int", [0])
                        raise AssertionError("division by zero did not fail")
                    except psycopg.errors.DivisionByZero:
                        pass
                    c.rollback()
    except Exception as e:
        errors.append(e)


def prepared():
    errors = []
    threads = [threading.Thread(target=worker, args=(w, errors)) for w in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def vector(v):
    assert isinstance(v, list) and len(v) == 384, f"expected 384 floats, got {type(v).__name__} {str(v)[:80]}"
    assert abs(math.hypot(*v) - 1) < 1e-4, "not unit length"
    return v


def embed(sql, text):
    with connect() as c:
        c.autocommit = True
        return vector(c.execute(sql, [text]).fetchone()[0])


def embed_positional():
    a = embed("SELECT pgml.embed('lexical', %s) AS e", "hello world")
    b = embed("SELECT pgml.embed('lexical', %s) AS e", "stock markets fell")
    assert a != b, "different inputs gave the same embedding"
    assert embed("SELECT pgml.embed('lexical', %s) AS e", "hello world") == a, "not deterministic"


def embed_named():
    a = embed("SELECT pgml.embed(transformer => 'lexical', text => %s) AS e", "hello world")
    assert a == embed("SELECT pgml.embed('lexical', %s) AS e", "hello world"), "named form differs from positional"


def embed_literal():
    with connect() as c:
        c.autocommit = True
        a = vector(c.execute("SELECT pgml.embed('lexical', 'hello world') AS e").fetchone()[0])
    assert a == embed("SELECT pgml.embed('lexical', %s) AS e", "hello world"), "literal differs from parameter"


def embed_insert():
    with connect() as c:
        for i in range(3):
            c.execute(f"INSERT INTO {TABLE} (worker, i, kind, emb) VALUES (-1, %s, 'embed', pgml.embed('lexical', %s))", [i, f"doc {i}"])
        c.commit()
        n = c.execute(f"SELECT count(*) FROM {TABLE} WHERE kind = 'embed' AND array_length(emb, 1) = %s", [384]).fetchone()[0]
        assert n == 3, f"{n} stored embeddings, expected 3"


def count():
    with connect() as c:
        rows = dict(c.execute(f"SELECT kind, count(*) FROM {TABLE} WHERE kind <> %s GROUP BY kind", ["embed"]).fetchall())
        assert rows == {"tx": CONNS * ITERATIONS}, f"rows by kind {rows}, expected {{'tx': {CONNS * ITERATIONS}}}"


if len(sys.argv) > 1 and sys.argv[1] == "dealloc":
    check("dealloc", dealloc)
else:
    check("setup", setup)
    check("prepared", prepared)
    check("embed positional", embed_positional)
    check("embed named", embed_named)
    check("embed literal", embed_literal)
    check("embed insert", embed_insert)
    check("count", count)
sys.exit(1 if failed else 0)
