-- sqlite3.sql: the workload of sqlite3.sh, run in an in-memory database.
-- 200k rows from a recursive CTE, two indexes, aggregates, a window
-- function, a big group_concat (one string grown by realloc to megabytes),
-- updates and deletes that rebalance the b-trees, and an integrity check.
-- Only deterministic functions are used (no random()), so the output does
-- not depend on the malloc in use. `.parameter set @rows N` first makes it
-- smaller (tools/chaos.sh).
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL);
WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq
                          WHERE x < coalesce(@rows, 200000))
INSERT INTO t SELECT x, (x * 7919) % 10007, printf('row-%08d-%s', x, hex(x * x)),
                     (x % 1000) / 7.0 FROM seq;
CREATE INDEX t_a ON t(a);
CREATE INDEX t_b ON t(b);
SELECT 'rows', count(*), sum(a), min(b), max(b), round(total(c), 3) FROM t;
SELECT 'top a', a, count(*) FROM t GROUP BY a ORDER BY count(*) DESC, a LIMIT 5;
SELECT 'buckets', a % 10, count(*), sum(length(b)), round(avg(c), 6) FROM t
  GROUP BY a % 10 ORDER BY 2;
SELECT 'distinct', count(DISTINCT substr(b, 14, 4)), count(DISTINCT a) FROM t;
SELECT 'concat', length(group_concat(b, ',')), length(group_concat(hex(a), '')) FROM t;
SELECT 'window', sum(d), max(d), min(d) FROM
  (SELECT a - lag(a, 1, 0) OVER (ORDER BY b DESC) AS d FROM t);
SELECT 'join', count(*), sum(t2.id - t1.id) FROM t AS t1 JOIN t AS t2
  ON t2.a = t1.a AND t2.id > t1.id AND t2.id < t1.id + 50000;
UPDATE t SET b = b || '-' || printf('%x', id * 31) WHERE a % 3 = 0;
DELETE FROM t WHERE id % 5 = 0 OR a BETWEEN 100 AND 900;
SELECT 'after', count(*), sum(length(b)), max(length(b)) FROM t;
SELECT 'sorted', group_concat(b, ';') FROM (SELECT b FROM t ORDER BY b DESC LIMIT 4);
CREATE TABLE u AS SELECT a, group_concat(id, ' ') AS ids FROM t GROUP BY a;
SELECT 'u', count(*), sum(length(ids)), max(length(ids)) FROM u;
PRAGMA integrity_check;
