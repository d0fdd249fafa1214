"""PyMySQL against the CN, unmodified: the calls an application makes.

Run by cn/tests/cluster.rs (`pymysql_works_unmodified`) with the CN's port
and a database name; prints one line per check, which the test compares.
"""
import sys

import pymysql

port, db = int(sys.argv[1]), sys.argv[2]
conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", database=db,
                       charset="utf8mb4", autocommit=False)
with conn.cursor() as cur:
    cur.execute("CREATE TABLE p (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2), at DATETIME NULL)")
    # Client-side parameters (PyMySQL escapes them into the text).
    cur.execute("INSERT INTO p VALUES (%s, %s, %s, %s)", (1, "O'Brien \\ \u00e9\u00e8", "12.50", "2026-11-22 10:00:00"))
    cur.executemany("INSERT INTO p (id, name, price) VALUES (%s, %s, %s)", [(2, "b", "1.00"), (3, None, None)])
    print("rowcount", cur.rowcount)
    conn.commit()
    cur.execute("SELECT id, name, price, at FROM p ORDER BY id")
    print("columns", [d[0] for d in cur.description])
    for row in cur.fetchall():
        print("row", repr(row))
    # A rolled-back transaction leaves nothing.
    cur.execute("UPDATE p SET price = price + 1 WHERE id IN (1, 2)")
    conn.rollback()
    cur.execute("SELECT SUM(price) FROM p")
    print("sum", cur.fetchone()[0])
    # An error is a pymysql exception with MySQL's code, and the connection
    # stays usable.
    try:
        cur.execute("SELECT nope FROM p")
    except pymysql.err.MySQLError as e:
        print("error", e.args[0])
    cur.execute("SELECT COUNT(*) FROM p WHERE name LIKE %s", ("O'%",))
    print("count", cur.fetchone()[0])
conn.close()
