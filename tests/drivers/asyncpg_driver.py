#!/usr/bin/python3
# asyncpg (Debian python3-asyncpg) through PgLynx: asyncpg prepares every
# statement under its own name (statement cache) and checks the server's
# ParameterDescription against the arguments it was given. Run with Debian's
# interpreter (/usr/bin/python3), connection from PGHOST PGPORT PGUSER
# PGPASSWORD PGDATABASE. Prints `ok CHECK` or `not ok CHECK: error` per check
# (see tests/drivers.test.ts); exit 1 if any check failed.
import asyncio
import math
import os
import sys

import asyncpg

TABLE = "drv_asyncpg"
CONNS, ITERATIONS = 4, 50
failed = False


async def connect():
    return await asyncpg.connect(
        host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]), user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"], database=os.environ["PGDATABASE"], timeout=10,
    )


async def check(name, fn):
    global failed
    try:
        await fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # report and carry on with the next check
        failed = True
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"not ok {name}: {msg}", flush=True)


async def setup():
    c = await connect()
    try:
        await c.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await c.execute(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, worker int NOT NULL, i int NOT NULL, kind text NOT NULL, emb real[])")
    finally:
        await c.close()


async def worker(w):
    c = await connect()
    try:
        for i in range(ITERATIONS):
            r = await c.fetchrow("SELECT $1::int + $2::int AS s, $3::text AS t", w, i, f"w{w}")
            assert (r["s"], r["t"]) == (w + i, f"w{w}"), f"worker {w} iteration {i}: got {tuple(r)}"
            async with c.transaction():
                await c.execute(f"INSERT INTO {TABLE} (worker, i, kind) VALUES ($1, $2, 'tx')", w, i)
            if i % 10 == 9:
                tx = c.transaction()
                await tx.start()
                await c.execute(f"INSERT INTO {TABLE} (worker, i, kind) VALUES ($1, $2, 'rolled_back')", w, i)
                try:
                    await c.fetchval("SELECT 1 / $1::int", 0)
                    raise AssertionError("division by zero did not fail")
                except asyncpg.exceptions.DivisionByZeroError:
                    pass
                await tx.rollback()
    finally:
        await c.close()


async def prepared():
    await asyncio.gather(*(worker(w) for w in range(CONNS)))


def vector(v):
    assert isinstance(v, list) and len(v) == 384, f"expected 384 floats, got {type(v).__name__} {str(v)[:80]}"
    assert abs(math.hypot(*v) - 1) < 1e-4, "not unit length"
    return v


async def embed(sql, *args):
    c = await connect()
    try:
        return vector(await c.fetchval(sql, *args))
    finally:
        await c.close()


async def embed_positional():
    a = await embed("SELECT pgml.embed('lexical', $1) AS e", "hello world")
    b = await embed("SELECT pgml.embed('lexical', $1) AS e", "stock markets fell")
    assert a != b, "different inputs gave the same embedding"
    assert await embed("SELECT pgml.embed('lexical', $1) AS e", "hello world") == a, "not deterministic"


async def embed_named():
    a = await embed("SELECT pgml.embed(transformer => 'lexical', text => $1) AS e", "hello world")
    assert a == await embed("SELECT pgml.embed('lexical', $1) AS e", "hello world"), "named form differs from positional"


async def embed_literal():
    a = await embed("SELECT pgml.embed('lexical', 'hello world') AS e")
    assert a == await embed("SELECT pgml.embed('lexical', $1) AS e", "hello world"), "literal differs from parameter"


async def embed_insert():
    c = await connect()
    try:
        async with c.transaction():
            for i in range(3):
                await c.execute(f"INSERT INTO {TABLE} (worker, i, kind, emb) VALUES (-1, $1, 'embed', pgml.embed('lexical', $2))", i, f"doc {i}")
        n = await c.fetchval(f"SELECT count(*) FROM {TABLE} WHERE kind = 'embed' AND array_length(emb, 1) = $1", 384)
        assert n == 3, f"{n} stored embeddings, expected 3"
    finally:
        await c.close()


async def count():
    c = await connect()
    try:
        rows = {r["kind"]: r["n"] for r in await c.fetch(f"SELECT kind, count(*) AS n FROM {TABLE} WHERE kind <> $1 GROUP BY kind", "embed")}
        assert rows == {"tx": CONNS * ITERATIONS}, f"rows by kind {rows}, expected {{'tx': {CONNS * ITERATIONS}}}"
    finally:
        await c.close()


async def main():
    await check("setup", setup)
    await check("prepared", prepared)
    await check("embed positional", embed_positional)
    await check("embed named", embed_named)
    await check("embed literal", embed_literal)
    await check("embed insert", embed_insert)
    await check("count", count)


asyncio.run(main())
sys.exit(1 if failed else 0)
