"""psycopg 3 over Redis foreign tables (or, for comparison, real tables holding the same rows).

Usage: psycopg_fdw.py <postgres-url> <hash-table> <list-table>
Prints one JSON document; the test compares the foreign-table run with the real-table run.
"""
import hashlib
import json
import sys
import traceback

import psycopg

URL, H, L = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}


def scenario(name):
    def wrap(fn):
        try:
            out[name] = fn()
        except Exception as e:
            out[name] = {"exception": repr(e), "trace": traceback.format_exc()}
        return fn
    return wrap


def connect(**kw):
    return psycopg.connect(URL, connect_timeout=10, **kw)


@scenario("params")
def _():
    with connect() as conn:
        return [list(r) for r in conn.execute(f"select value from {H} where key = %s", ("f042",))]


@scenario("prepare")
def _():
    with connect(autocommit=True) as conn:
        explicit = [conn.execute(f"select value from {H} where key = %s", (f"f{i:03d}",), prepare=True).fetchone()[0] for i in range(6)]
        auto = [conn.execute(f"select count(*) from {L} where element < %s", (f"e0{i}00",)).fetchone()[0] for i in range(8)]
        return {"explicit": explicit, "auto": auto}


@scenario("binary_cursor")
def _():
    with connect() as conn:
        cur = conn.cursor(binary=True)
        cur.execute(f"select key, value::int as v, length(key) as n from {H} where key = any(%s) order by key", (["f001", "f002", "nope"],))
        return {"rows": [list(r) for r in cur.fetchall()], "formats": [cur.pgresult.fformat(i) for i in range(cur.pgresult.nfields)]}


@scenario("server_side_cursor")
def _():
    with connect() as conn:
        with conn.cursor(name="drv_fdw_cur") as cur:
            cur.itersize = 100
            cur.execute(f"select element from {L} order by element")
            h = hashlib.sha256()
            n = 0
            for (e,) in cur:
                n += 1
                h.update(e.encode())
        return {"n": n, "sha": h.hexdigest()}


@scenario("pipeline")
def _():
    with connect(autocommit=True) as conn:
        res = {}
        with conn.pipeline():
            c1 = conn.execute(f"select count(*) from {H}")
            c2 = conn.execute(f"select value from {H} where key = %s", ("f010",))
            c3 = conn.execute(f"select min(element), max(element) from {L}")
        res["ok"] = [c1.fetchone()[0], c2.fetchone()[0], list(c3.fetchone())]
        try:
            with conn.pipeline():
                conn.execute(f"select value from {H} where key = %s", ("f011",))
                conn.execute(f"select 1/0 from {H} where key = %s", ("f011",))
                conn.execute(f"select count(*) from {L}")
            res["error"] = None
        except psycopg.Error as e:
            res["error"] = e.sqlstate
        res["after"] = conn.execute(f"select value from {H} where key = %s", ("f012",)).fetchone()[0]
        return res


@scenario("copy_out")
def _():
    with connect(autocommit=True) as conn:
        h = hashlib.sha256()
        with conn.cursor().copy(f"copy (select key, value from {H} order by key) to stdout") as cp:
            for chunk in cp:
                h.update(chunk)
        return h.hexdigest()


@scenario("transaction")
def _():
    with connect() as conn:
        res = {}
        res["a"] = conn.execute(f"select count(*) from {L}").fetchone()[0]
        try:
            conn.execute(f"select nosuch from {H}")
        except psycopg.Error as e:
            res["err"] = e.sqlstate
        conn.rollback()
        res["b"] = conn.execute(f"select value from {H} where key = 'f020'").fetchone()[0]
        conn.commit()
        return res


print(json.dumps(out, sort_keys=True, default=str))
