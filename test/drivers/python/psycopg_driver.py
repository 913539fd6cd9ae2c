"""psycopg 3 scenarios for the driver tests; run with /usr/bin/python3 (the Debian python3-psycopg).

Usage: psycopg_driver.py <postgres-url> <table-prefix>
Prints one JSON document with what each scenario saw. Nothing in it may depend on which server
(upstream directly or the proxy) answered, so the test can compare the two runs as a whole.
"""
import datetime
import decimal
import hashlib
import json
import sys
import traceback
import uuid

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

URL = sys.argv[1]
P = sys.argv[2]


def jsonable(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return {"time": v.isoformat()}
    if isinstance(v, datetime.timedelta):
        return {"interval": v.total_seconds()}
    if isinstance(v, decimal.Decimal):
        return {"decimal": str(v)}
    if isinstance(v, uuid.UUID):
        return {"uuid": str(v)}
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def err(e):
    d = e.diag
    return {
        "type": type(e).__name__,
        "sqlstate": e.sqlstate,
        "message": d.message_primary,
        "detail": d.message_detail,
        "hint": d.message_hint,
        "position": d.statement_position,
        "severity": d.severity_nonlocalized,
        "constraint": d.constraint_name,
        "source": [d.source_file, d.source_function],
    }


out = {}


def scenario(name):
    def wrap(fn):
        try:
            out[name] = fn()
        except Exception as e:  # a failed scenario is reported, the others still run
            out[name] = {"exception": repr(e), "trace": traceback.format_exc()}
        return fn
    return wrap


def connect(**kw):
    return psycopg.connect(URL, connect_timeout=10, **kw)


@scenario("connect")
def _():
    with connect() as conn:
        info = conn.info
        return {
            "status": info.status.name,
            "tx": info.transaction_status.name,
            "server_version": info.server_version,
            "encoding": info.encoding,
            "std_strings": info.parameter_status("standard_conforming_strings"),
            "has_pid": info.backend_pid > 0,
            "user": conn.execute("select current_user").fetchone()[0],
        }


@scenario("params")
def _():
    with connect() as conn:
        cur = conn.execute(
            "select %s::int + 1 as n, %s::text as t, %s as b, %s::numeric as d, %s::date as dt, %s as arr, %s::jsonb as j, %s as nul",
            (41, "it's; drop table x; --", b"\x00\x01\xff", decimal.Decimal("1.50"), datetime.date(2020, 2, 29), [1, 2, None], json.dumps({"a": [1, "x"]}), None),
        )
        row = cur.fetchone()
        named = conn.execute("select %(a)s::int * %(b)s::int as prod, %(a)s::int as a", {"a": 6, "b": 7}).fetchone()
        desc = [(c.name, c.type_code) for c in cur.description]
        try:
            conn.execute("select %s::int", ("nope",))
            bad = None
        except psycopg.Error as e:
            bad = err(e)
        conn.rollback()
        return {"row": jsonable(row), "named": list(named), "desc": desc, "bad": bad}


@scenario("binary_cursor")
def _():
    with connect() as conn:
        cur = conn.cursor(binary=True)
        cur.execute("select 1::int4 as a, -2::int8 as b, 1.5::float8 as c, 'héllo'::text as d, '\\x00ff'::bytea as e, true as f, '2000-01-01 00:00:01+00'::timestamptz as g, array[1,2,3]::int[] as h, %s::int as p", (9,))
        row = cur.fetchone()
        return {"row": jsonable(row), "formats": [cur.pgresult.fformat(i) for i in range(cur.pgresult.nfields)]}


@scenario("executemany")
def _():
    t = f"{P}_many"
    with connect(autocommit=True) as conn:
        conn.execute(f"drop table if exists {t}")
        conn.execute(f"create table {t} (id int primary key, v text, f float8)")
        try:
            with conn.cursor() as cur:
                cur.executemany(f"insert into {t} (id, v, f) values (%s, %s, %s)", [(i, f"v{i}", i / 4) for i in range(500)])
                rc = cur.rowcount
                # executemany with returning=True gives one result set per parameter set
                cur.executemany(f"update {t} set v = v || '!' where id = %s returning id, v", [(i,) for i in range(0, 500, 100)], returning=True)
                returned = []
                while True:
                    returned.append(cur.fetchall())
                    if not cur.nextset():
                        break
                try:
                    cur.executemany(f"insert into {t} (id, v, f) values (%s, %s, %s)", [(1000, "ok", 0), (0, "dup", 0), (1001, "never", 0)])
                    dup = None
                except psycopg.Error as e:
                    dup = err(e)
                agg = conn.execute(f"select count(*), sum(id), sum(f), max(v) from {t}").fetchone()
            return {"rowcount": rc, "returned": returned, "dup": dup, "agg": jsonable(agg)}
        finally:
            conn.execute(f"drop table if exists {t}")


@scenario("server_side_cursor")
def _():
    with connect() as conn:
        with conn.cursor(name="drv_named_cur") as cur:
            cur.itersize = 100
            cur.execute("select g, md5(g::text) from generate_series(1, %s) g", (5000,))
            first = cur.fetchmany(10)
            h = hashlib.sha256()
            n = len(first)
            for g, m in first:
                h.update(f"{g}:{m}\n".encode())
            for g, m in cur:
                n += 1
                h.update(f"{g}:{m}\n".encode())
            cur.scroll(0, mode="absolute")
            again = cur.fetchone()
            in_cursors = conn.execute("select name, is_holdable, is_scrollable from pg_cursors where name = 'drv_named_cur'").fetchall()
        gone = conn.execute("select count(*) from pg_cursors where name = 'drv_named_cur'").fetchone()[0]
        conn.commit()
        # A WITH HOLD cursor outlives the transaction.
        with conn.cursor(name="drv_hold_cur", withhold=True) as hc:
            hc.execute("select generate_series(1, 250)")
            conn.commit()
            held = [r[0] for r in hc.fetchmany(1000)]
        return {"n": n, "sha": h.hexdigest(), "again": list(again), "in_cursors": in_cursors, "gone": gone, "held_len": len(held), "held_sum": sum(held)}


@scenario("copy")
def _():
    t = f"{P}_copy"
    with connect(autocommit=True) as conn:
        conn.execute(f"drop table if exists {t}")
        conn.execute(f"create table {t} (id int, name text, data bytea, tags text[])")
        try:
            with conn.cursor() as cur:
                with cur.copy(f"copy {t} (id, name, data, tags) from stdin") as cp:
                    for i in range(20000):
                        cp.write_row((i, f"n\t{i}\\x" if i % 100 == 0 else f"name {i}", bytes([i % 256, 255 - i % 256]), [str(i), None] if i % 7 == 0 else None))
                loaded = cur.rowcount
                with cur.copy(f"copy {t} (id, name) from stdin") as cp:
                    cp.write("".join(f"{i}\traw {i}\n" for i in range(20000, 25000)))
                h = hashlib.sha256()
                size = 0
                with cur.copy(f"copy (select * from {t} order by id) to stdout") as cp:
                    for chunk in cp:
                        h.update(chunk)
                        size += len(chunk)
                rows = []
                with cur.copy(f"copy (select id, name, tags from {t} where id in (0, 7, 24999) order by id) to stdout") as cp:
                    cp.set_types(["int4", "text", "text[]"])
                    rows = list(cp.rows())
                bh = hashlib.sha256()
                with cur.copy(f"copy (select * from {t} order by id) to stdout (format binary)") as cp:
                    for chunk in cp:
                        bh.update(chunk)
                try:
                    with cur.copy(f"copy {t} (id) from stdin") as cp:
                        cp.write("1\n2\nnot-a-number\n")
                    bad = None
                except psycopg.Error as e:
                    bad = err(e)
                count = conn.execute(f"select count(*) from {t}").fetchone()[0]
            return {"loaded": loaded, "sha": h.hexdigest(), "size": size, "rows": jsonable(rows), "bin_sha": bh.hexdigest(), "bad": bad, "count": count}
        finally:
            conn.execute(f"drop table if exists {t}")


@scenario("transactions")
def _():
    t = f"{P}_tx"
    with connect() as conn:
        conn.execute(f"drop table if exists {t}")
        conn.execute(f"create table {t} (id int primary key)")
        conn.commit()
        try:
            res = {}
            conn.execute(f"insert into {t} values (1)")
            conn.rollback()
            res["after_rollback"] = conn.execute(f"select count(*) from {t}").fetchone()[0]
            conn.execute(f"insert into {t} values (2)")
            try:
                conn.execute("select 1/0")
            except psycopg.errors.DivisionByZero as e:
                res["div"] = err(e)
            res["status_after_error"] = conn.info.transaction_status.name
            try:
                conn.execute("select 1")
            except psycopg.errors.InFailedSqlTransaction as e:
                res["in_failed"] = err(e)
            conn.rollback()
            res["status_after_rollback"] = conn.info.transaction_status.name
            with conn.transaction():
                conn.execute(f"insert into {t} values (3)")
                with conn.transaction():  # a savepoint
                    conn.execute(f"insert into {t} values (4)")
                    try:
                        with conn.transaction():
                            conn.execute(f"insert into {t} values (3)")
                    except psycopg.errors.UniqueViolation as e:
                        res["unique"] = err(e)
                try:
                    with conn.transaction():
                        conn.execute(f"insert into {t} values (5)")
                        raise psycopg.Rollback()
                except psycopg.Rollback:
                    pass
            res["rows"] = [r[0] for r in conn.execute(f"select id from {t} order by id")]
            conn.commit()
            conn.autocommit = True
            with conn.transaction():
                conn.execute(f"insert into {t} values (6)")
            try:
                with conn.transaction():
                    conn.execute(f"insert into {t} values (7)")
                    conn.execute("select nosuch")
            except psycopg.errors.UndefinedColumn as e:
                res["undefined"] = err(e)
            res["final"] = [r[0] for r in conn.execute(f"select id from {t} order by id")]
            return res
        finally:
            conn.rollback()
            conn.autocommit = True
            conn.execute(f"drop table if exists {t}")


@scenario("pipeline")
def _():
    t = f"{P}_pipe"
    with connect(autocommit=True) as conn:
        conn.execute(f"drop table if exists {t}")
        conn.execute(f"create table {t} (id int primary key, v text)")
        try:
            res = {}
            with conn.pipeline() as p:
                curs = []
                for i in range(50):
                    c = conn.cursor()
                    c.execute(f"insert into {t} (id, v) values (%s, %s) returning id * 10", (i, f"p{i}"))
                    curs.append(c)
                p.sync()
                cs = conn.cursor()
                cs.execute(f"select count(*), sum(id) from {t}")
                res["returning"] = [c.fetchone()[0] for c in curs]
                res["agg"] = list(cs.fetchone())
            # An error inside a pipeline: the statements before it ran, the ones after are skipped.
            try:
                with conn.pipeline():
                    conn.execute(f"insert into {t} (id, v) values (100, 'before')")
                    conn.execute(f"insert into {t} (id, v) values (0, 'dup')")
                    conn.execute(f"insert into {t} (id, v) values (101, 'after')")
                res["error"] = None
            except psycopg.Error as e:
                res["error"] = err(e)
            res["rows_after_error"] = [r[0] for r in conn.execute(f"select id from {t} where id >= 100 order by id")]
            # Pipeline inside a transaction: the error aborts the whole transaction.
            try:
                with conn.transaction(), conn.pipeline():
                    conn.execute(f"insert into {t} (id, v) values (200, 'tx')")
                    conn.execute("select 1/0")
            except psycopg.Error as e:
                res["tx_error"] = err(e)
            res["tx_rows"] = conn.execute(f"select count(*) from {t} where id = 200").fetchone()[0]
            res["usable"] = conn.execute("select 'ok'").fetchone()[0]
            return res
        finally:
            conn.execute(f"drop table if exists {t}")


@scenario("prepare")
def _():
    with connect(autocommit=True) as conn:
        q = "select %s::int * 3 as v, 'drv_prep_marker' as m"
        vals = [conn.execute(q, (i,), prepare=True).fetchone()[0] for i in range(5)]
        prepared = conn.execute("select count(*), array_agg(name like '\\_pg3\\_%%') from pg_prepared_statements where statement like '%%drv_prep_marker%%'").fetchone()
        # Automatic preparation after prepare_threshold executions (default 5).
        q2 = "select %s::text || 'x' as v, 'drv_auto_marker' as m"
        vals2 = [conn.execute(q2, (str(i),)).fetchone()[0] for i in range(8)]
        auto = conn.execute("select count(*) from pg_prepared_statements where statement like '%%drv_auto_marker%%'").fetchone()[0]
        # prepare=False never prepares.
        q3 = "select %s::int as v, 'drv_noprep_marker' as m"
        for i in range(8):
            conn.execute(q3, (i,), prepare=False)
        never = conn.execute("select count(*) from pg_prepared_statements where statement like '%%drv_noprep_marker%%'").fetchone()[0]
        return {"vals": vals, "prepared": list(prepared), "vals2": vals2, "auto": auto, "never": never}


@scenario("notices_notifies_params")
def _():
    with connect(autocommit=True) as conn, connect(autocommit=True) as other:
        notices = []
        conn.add_notice_handler(lambda d: notices.append([d.severity_nonlocalized, d.sqlstate, d.message_primary]))
        conn.execute("do $$ begin raise notice 'py notice %', 1; raise warning 'py warning'; end $$")
        notifies = []
        conn.add_notify_handler(lambda n: notifies.append([n.channel, n.payload, n.pid == other.info.backend_pid]))
        chan = f"{P}_chan"
        conn.execute(f"listen {chan}")
        other.execute(f"notify {chan}, 'hello'")
        other.execute("select pg_notify(%s, %s)", (chan, "wörld"))
        conn.execute("select pg_sleep(0.2)")  # notifications arrive with this query's results
        conn.execute("set application_name = 'drv_psycopg'")
        return {"notices": notices, "notifies": notifies, "app": conn.info.parameter_status("application_name")}


@scenario("client_encoding")
def _():
    # Query text and results in LATIN1 bytes: the proxy must pass them through untouched.
    with connect(autocommit=True) as conn:
        conn.execute("set client_encoding to 'LATIN1'")
        row = conn.execute("select 'café' as t, %s::text as p, length('café') as n, octet_length(%s::text) as o", ("naïve", "ÿ")).fetchone()
        try:
            conn.execute("select chr(10003)")
            unmappable = None
        except psycopg.Error as e:
            unmappable = err(e)
        enc = conn.info.encoding
        conn.execute("set client_encoding to 'UTF8'")
        back = conn.execute("select 'café ✓' as t").fetchone()[0]
        return {"row": list(row), "unmappable": unmappable, "enc": enc, "back": back}


print(json.dumps(out, sort_keys=True, default=str))
