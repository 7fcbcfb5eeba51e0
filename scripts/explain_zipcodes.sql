-- Query plans for "the zipcodes of a risk factor", before and after the index
-- ix_zipcodes_risk_factor_zipcode (risk_factor, zipcode) of migration 0002.
-- Quoted in docs/answers.md (answer 2). Everything happens in a scratch schema that is dropped
-- at the end, so it is safe on a shared database:
--
--   psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -f scripts/explain_zipcodes.sql test
--
-- Timings vary from run to run and machine to machine; the plan shapes and buffer counts are
-- what to compare.

\set ON_ERROR_STOP 1
DROP SCHEMA IF EXISTS answers_scratch CASCADE;
CREATE SCHEMA answers_scratch;
SET search_path = answers_scratch;

-- The table of migration 0002, without its index for now.
CREATE TABLE zipcodes (
    zipcode integer NOT NULL,
    risk_factor varchar(1) NOT NULL,
    CONSTRAINT ck_zipcodes_risk_factor CHECK (risk_factor IN ('A', 'B', 'C')),
    CONSTRAINT ck_zipcodes_zipcode_range CHECK (zipcode BETWEEN 1000 AND 9999),
    PRIMARY KEY (zipcode)
);
-- Realistic: every code from 1000 to 9999 (9 000 rows), one factor per range of 50 codes as in
-- operators' CSV files ("1000 - 1049,C"), the ranges' factors scattered by a multiplicative hash:
-- A about 10% of the codes, B 30%, C 60%.
INSERT INTO zipcodes
SELECT zipcode, CASE WHEN h < 10 THEN 'A' WHEN h < 40 THEN 'B' ELSE 'C' END
FROM generate_series(1000, 9999) AS zipcode,
    LATERAL (SELECT (zipcode / 50)::bigint * 2654435761 % 4294967296 % 100 AS h) AS hashed;

-- Synthetic, to make the effect visible: the same columns and factor pattern on 1 000 000 rows
-- (codes 1 to 1 000 000, so without the range check).
CREATE TABLE zipcodes_large (
    zipcode integer NOT NULL,
    risk_factor varchar(1) NOT NULL,
    CONSTRAINT ck_zipcodes_large_risk_factor CHECK (risk_factor IN ('A', 'B', 'C')),
    PRIMARY KEY (zipcode)
);
INSERT INTO zipcodes_large
SELECT zipcode, CASE WHEN h < 10 THEN 'A' WHEN h < 40 THEN 'B' ELSE 'C' END
FROM generate_series(1, 1000000) AS zipcode,
    LATERAL (SELECT (zipcode / 50)::bigint * 2654435761 % 4294967296 % 100 AS h) AS hashed;

-- Statistics and the visibility map, as autovacuum would leave them after an import. VACUUM can
-- mark pages all-visible (what lets an index-only scan skip the table) only when no other
-- session's snapshot is older than the insert: on a busy shared database, check relallvisible.
VACUUM ANALYZE zipcodes;
VACUUM ANALYZE zipcodes_large;
SELECT relname, relpages, relallvisible FROM pg_class
WHERE relnamespace = 'answers_scratch'::regnamespace AND relkind = 'r' ORDER BY relname;

SELECT 'zipcodes' AS "table", risk_factor, count(*) FROM zipcodes GROUP BY risk_factor
UNION ALL
SELECT 'zipcodes_large', risk_factor, count(*) FROM zipcodes_large GROUP BY risk_factor
ORDER BY 1, 2;

\echo '==================== BEFORE the index: 9 000 rows ===================='
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes WHERE risk_factor = 'A' ORDER BY zipcode LIMIT 1000;
EXPLAIN (ANALYZE, BUFFERS)
SELECT count(*) FROM zipcodes WHERE risk_factor = 'A';
-- Items and total in one statement, as the listing can do it with a window function.
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode, count(*) OVER () AS total FROM zipcodes WHERE risk_factor = 'A'
ORDER BY zipcode LIMIT 1000;

\echo '==================== BEFORE the index: 1 000 000 rows ===================='
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes_large WHERE risk_factor = 'A' ORDER BY zipcode LIMIT 1000;
EXPLAIN (ANALYZE, BUFFERS)
SELECT count(*) FROM zipcodes_large WHERE risk_factor = 'A';
-- Items and total in one statement, as the listing can do it with a window function.
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode, count(*) OVER () AS total FROM zipcodes_large WHERE risk_factor = 'A'
ORDER BY zipcode LIMIT 1000;
-- The commonest factor, for comparison.
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes_large WHERE risk_factor = 'C' ORDER BY zipcode LIMIT 1000;
-- A deep page: what OFFSET pagination costs.
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes_large WHERE risk_factor = 'A' ORDER BY zipcode
LIMIT 1000 OFFSET 90000;

-- The index of migration 0002.
CREATE INDEX ix_zipcodes_risk_factor_zipcode ON zipcodes (risk_factor, zipcode);
CREATE INDEX ix_zipcodes_large_risk_factor_zipcode ON zipcodes_large (risk_factor, zipcode);
ANALYZE zipcodes;
ANALYZE zipcodes_large;
SELECT relname, pg_size_pretty(pg_relation_size(oid)) AS size FROM pg_class
WHERE relnamespace = 'answers_scratch'::regnamespace ORDER BY relname;

\echo '==================== AFTER the index: 9 000 rows ===================='
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes WHERE risk_factor = 'A' ORDER BY zipcode LIMIT 1000;
EXPLAIN (ANALYZE, BUFFERS)
SELECT count(*) FROM zipcodes WHERE risk_factor = 'A';
-- Items and total in one statement, as the listing can do it with a window function.
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode, count(*) OVER () AS total FROM zipcodes WHERE risk_factor = 'A'
ORDER BY zipcode LIMIT 1000;

\echo '==================== AFTER the index: 1 000 000 rows ===================='
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes_large WHERE risk_factor = 'A' ORDER BY zipcode LIMIT 1000;
EXPLAIN (ANALYZE, BUFFERS)
SELECT count(*) FROM zipcodes_large WHERE risk_factor = 'A';
-- Items and total in one statement, as the listing can do it with a window function.
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode, count(*) OVER () AS total FROM zipcodes_large WHERE risk_factor = 'A'
ORDER BY zipcode LIMIT 1000;
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes_large WHERE risk_factor = 'C' ORDER BY zipcode LIMIT 1000;
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes_large WHERE risk_factor = 'A' ORDER BY zipcode
LIMIT 1000 OFFSET 90000;

-- Keyset pagination: the next page after the last zipcode seen, whatever its depth.
EXPLAIN (ANALYZE, BUFFERS)
SELECT zipcode FROM zipcodes_large WHERE risk_factor = 'A' AND zipcode > 900000
ORDER BY zipcode LIMIT 1000;

DROP SCHEMA answers_scratch CASCADE;
