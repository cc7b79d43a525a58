"""
test_seeds_pg.py — examples/seeds on PostgreSQL, over real sockets: the
database tests of test_seeds.py (items and users: create, read, list,
delete, a duplicate email, ids the server fills in; a failed query
answered with a plain 500, its message quoting the row only in the log
with --debug; rows kept across a restart) against a private PostgreSQL
server (pg.py). Skipped with a message when PostgreSQL is not installed.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_seeds as S  # noqa: E402
from pg import SKIP, Postgres  # noqa: E402

pgs = Postgres()


def forbid_pg(word):
    """PostgreSQL's own wording: 'new row for relation "items" violates
    check constraint ... (Failing row contains (7, <word>))'."""
    pgs.psql(f"ALTER TABLE items ADD CONSTRAINT cf_forbid CHECK (name <> '{word}')")


def main():
    H.watchdog(120)
    if not pgs.available():
        print(SKIP)
        S.up.stop()
        H.finish([])
    failures = []
    try:
        pgs.start()
        S.DB = pgs.url()
        S.FORBID = forbid_pg
        S.srv = S.start()
        tests = [S.t_db_endpoints, S.t_users, S.t_failed_query_is_a_generic_500,
                 S.t_data_survives_a_restart]
        failures = H.run_tests([(f.__name__[2:], f) for f in tests])
    finally:
        if S.srv:
            H.stop_and_check(S.srv)
        pgs.stop()
        S.up.stop()
    H.finish(failures)


if __name__ == "__main__":
    main()
