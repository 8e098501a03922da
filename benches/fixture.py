#!/usr/bin/env python3
"""Fixtures and result checks for scripts/bench.sh, fast at 100,000 accounts.

No password is hashed here: every shadow line and record carries one of a few
hashes made beforehand (by credsync itself, see bench.sh), and the store's rows
are written with Python's sqlite3 into a database whose schema credsync
created. Subcommands:

  accounts ROOT N HASH DAY [UID]  ROOT/etc/{passwd,group,shadow} with N users
                                  op000001..; every shadow line holds HASH and
                                  last-change DAY (UID: chown everything to it)
  store ROOT N HASH DAY OLD       N records (linux_hash HASH, changed on DAY),
                                  each with OLD in its history, as if imported
  drift ROOT N PERCENT HASH       PERCENT of the users changed behind credsync's
                                  back: half in Linux after the record (sync
                                  adopts), half rolled back to before it
                                  (sync restores); prints the count
  set-user ROOT USER HASH         USER's shadow line and record hold HASH
  batch N COUNT                   COUNT `user:password` lines (users 1..COUNT)
  check-import ROOT COUNT PREFIX BEFORE [DB]
                                  the first COUNT users hold new hashes starting
                                  with PREFIX (BEFORE: the shadow before), every
                                  other line is unchanged, and (with DB) the
                                  store has COUNT records of source 'import'
  check-status JSON N             `status --json` lists N users, all in sync
"""

import json
import os
import sqlite3
import sys
import time

SHADOW_GID = 42


def user(i):
    return f"op{i:06d}"


def today():
    return int(time.time()) // 86400


def accounts(root, n, linux_hash, day, uid=None):
    etc = os.path.join(root, "etc")
    os.makedirs(os.path.join(etc, "credsync"), exist_ok=True)
    passwd = ["root:x:0:0:root:/root:/bin/bash\n"]
    group = ["root:x:0:\n", "shadow:x:42:\n", "users:x:100:\n"]
    shadow = ["root:*:19000:0:99999:7:::\n"]
    for i in range(1, n + 1):
        name = user(i)
        passwd.append(f"{name}:x:{10000 + i}:100::/home/{name}:/bin/sh\n")
        shadow.append(f"{name}:{linux_hash}:{day}:0:99999:7:::\n")
    for name, lines in (("passwd", passwd), ("group", group), ("shadow", shadow)):
        with open(os.path.join(etc, name), "w") as f:
            f.writelines(lines)
    os.chmod(os.path.join(etc, "shadow"), 0o640)
    os.chown(os.path.join(etc, "shadow"), 0, SHADOW_GID)
    if uid is not None:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), uid, uid)
        os.lchown(root, uid, uid)


def store(root, n, linux_hash, day, old_hash):
    db = os.path.join(root, "var/lib/credsync/credsync.db")
    conn = sqlite3.connect(db)
    at = day * 86400 + 3600
    # A plausible PHC string: sync and status never check it.
    app_hash = "$argon2id$v=19$m=19456,t=2,p=1$" + "c2FsdHNhbHRzYWx0c2FsdA" + "$" + "h" * 43
    with conn:
        conn.executemany(
            "INSERT INTO record (user, app_hash, linux_hash, changed_day, changed_at,"
            " changed_by, source, session_epoch, must_change)"
            " VALUES (?, ?, ?, ?, ?, 'root', 'import', 1, 0)",
            ((user(i), app_hash, linux_hash, day, at) for i in range(1, n + 1)),
        )
        conn.executemany(
            "INSERT INTO history VALUES (?, NULL, ?, ?)",
            ((user(i), old_hash, at) for i in range(1, n + 1)),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def drifted_users(n, percent):
    step = max(1, round(100 / percent)) if percent else 0
    return [i for i in range(1, n + 1) if step and (i - 1) % step == 0]


def drift(root, n, percent, new_hash):
    path = os.path.join(root, "etc/shadow")
    chosen = drifted_users(n, percent)
    with open(path) as f:
        lines = f.readlines()
    for k, i in enumerate(chosen):
        fields = lines[i].split(":")  # line 0 is root
        assert fields[0] == user(i)
        record_day = int(fields[2])
        fields[1] = new_hash
        # Even: changed in Linux after the record (adopt); odd: rolled back.
        fields[2] = str(record_day + 5 if k % 2 == 0 else record_day - 5)
        lines[i] = ":".join(fields)
    with open(path, "w") as f:
        f.writelines(lines)
    print(len(chosen))


def set_user(root, name, linux_hash):
    path = os.path.join(root, "etc/shadow")
    with open(path) as f:
        lines = f.readlines()
    for k, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == name:
            fields[1] = linux_hash
            lines[k] = ":".join(fields)
    with open(path, "w") as f:
        f.writelines(lines)
    conn = sqlite3.connect(os.path.join(root, "var/lib/credsync/credsync.db"))
    with conn:
        conn.execute("UPDATE record SET linux_hash = ? WHERE user = ?", (linux_hash, name))
    conn.close()


def batch(count):
    out = sys.stdout
    for i in range(1, count + 1):
        # Long and varied enough for pam_pwquality, which chpasswd's stack runs.
        out.write(f"{user(i)}:Bench#{i * 7919 % 100003:05d}-Lq{i % 97:02d}zR\n")


def shadow_map(path):
    with open(path) as f:
        return [line.rstrip("\n").split(":") for line in f]


def fail(message):
    print(f"bench check FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check_import(root, count, prefix, before_path, db=None):
    after = shadow_map(os.path.join(root, "etc/shadow"))
    before = shadow_map(before_path)
    if len(after) != len(before):
        fail(f"shadow has {len(after)} lines, had {len(before)}")
    changed = 0
    for a, b in zip(after, before):
        if a[0] != b[0]:
            fail(f"line order changed at {a[0]}")
        managed = a[0].startswith("op") and int(a[0][2:]) <= count
        if managed:
            if a[1] == b[1] or not a[1].startswith(prefix):
                fail(f"{a[0]}: hash not replaced by a {prefix} hash")
            changed += 1
        elif a != b:
            fail(f"{a[0]}: line changed but was not in the batch")
    if changed != count:
        fail(f"{changed} users changed, expected {count}")
    if db:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = conn.execute(
            "SELECT count(*) FROM record WHERE source = 'import' AND app_hash LIKE '$argon2id$%'"
        ).fetchone()[0]
        if rows != count:
            fail(f"the store has {rows} imported records, expected {count}")
        shadow_hashes = {a[0]: a[1] for a in after}
        for name, linux_hash in conn.execute("SELECT user, linux_hash FROM record"):
            if shadow_hashes.get(name) != linux_hash:
                fail(f"{name}: the record's Linux hash is not shadow's")


def check_status(json_path, n):
    with open(json_path) as f:
        listing = json.load(f)
    if len(listing) != n:
        fail(f"status listed {len(listing)} users, expected {n}")
    wrong = [r["user"] for r in listing if r.get("state") != "in-sync"]
    if wrong:
        fail(f"{len(wrong)} users not in sync after sync, e.g. {wrong[0]}")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "accounts":
        uid = int(args[4]) if len(args) > 4 else None
        accounts(args[0], int(args[1]), args[2], int(args[3]), uid)
    elif cmd == "store":
        store(args[0], int(args[1]), args[2], int(args[3]), args[4])
    elif cmd == "drift":
        drift(args[0], int(args[1]), float(args[2]), args[3])
    elif cmd == "set-user":
        set_user(args[0], args[1], args[2])
    elif cmd == "batch":
        batch(int(args[1]))
    elif cmd == "check-import":
        check_import(args[0], int(args[1]), args[2], args[3], args[4] if len(args) > 4 else None)
    elif cmd == "check-status":
        check_status(args[0], int(args[1]))
    elif cmd == "today":
        print(today())
    else:
        fail(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main(sys.argv)
