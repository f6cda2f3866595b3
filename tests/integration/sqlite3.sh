#!/bin/bash
# sqlite3.sh: the sqlite3 shell running sqlite3.sql (200k rows in an
# in-memory database, indexes, aggregates, updates) with and without the
# shim. Checks, through run_pair: identical output (including PRAGMA
# integrity_check), clean exit, the shim loaded. Skips when sqlite3 is
# missing.
source "$(dirname "$0")/common.sh"

SQLITE=$(command -v sqlite3 || true)
[[ -n $SQLITE ]] || skip "sqlite3 is not installed"
need_program "$SQLITE"

# -init /dev/null: a user's ~/.sqliterc must not change the output.
run_pair memdb "$SQLITE" -batch -bail -init /dev/null :memory: ".read $IT_DIR/sqlite3.sql"
finish
