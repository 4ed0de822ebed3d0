-- Every DML kind, every replica identity, NULLs, unchanged TOAST, a
-- user-defined type (Type message), TRUNCATE with options, a savepoint
-- rolled back, hostile identifiers. Protocol 1, text values.
-- options: proto_version=1 publication_names=p
SET client_min_messages = warning;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t_types (
    id bigint PRIMARY KEY, i2 smallint, i4 integer, n numeric(12,2),
    f8 double precision, f4 real, b boolean, t text, vc varchar(20),
    c char(3), ts timestamptz, d date, tm time, iv interval, j json,
    jb jsonb, u uuid, ba bytea, arr text[], ip inet, m mood);
CREATE TABLE t_full (a int, b text);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_toast (id int PRIMARY KEY, big text, other int);
ALTER TABLE t_toast ALTER big SET STORAGE EXTERNAL;
CREATE TABLE t_nothing (a int);
ALTER TABLE t_nothing REPLICA IDENTITY NOTHING;
CREATE TABLE t_idx (a int NOT NULL, b int NOT NULL, c text);
CREATE UNIQUE INDEX t_idx_ab ON t_idx (a, b);
ALTER TABLE t_idx REPLICA IDENTITY USING INDEX t_idx_ab;
CREATE TABLE "we;ird ""Tab"" ñ" ("Sel ect" int PRIMARY KEY, "from" text);
CREATE PUBLICATION p FOR ALL TABLES;
-- capture
INSERT INTO t_types VALUES
  (1, -32768, 2147483647, 12345.67, 'NaN', '-Infinity', true, 'héllo "q" \ x',
   'vc', 'ab', '2026-11-24 07:56:50.123456+00', '2026-11-24', '23:59:59',
   '1 day 02:03:04', '{"a": [1, 2]}', '{"b": null}',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', '{x,NULL,"a b","q\""}',
   '192.168.0.1/24', 'happy'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
UPDATE t_types SET t = 'changed' WHERE id = 1;
UPDATE t_types SET id = 10 WHERE id = 2;
DELETE FROM t_types WHERE id = 10;
INSERT INTO t_full VALUES (1, 'a'), (2, NULL);
UPDATE t_full SET b = 'b' WHERE a = 1;
DELETE FROM t_full WHERE a = 2;
INSERT INTO t_toast VALUES (1, repeat('x', 10000), 1);
UPDATE t_toast SET other = 2 WHERE id = 1;
INSERT INTO t_nothing VALUES (1);
INSERT INTO t_idx VALUES (1, 2, 'c');
UPDATE t_idx SET c = 'd';
UPDATE t_idx SET b = 3;
INSERT INTO "we;ird ""Tab"" ñ" VALUES (1, 'select');
BEGIN;
INSERT INTO t_full VALUES (3, 'kept');
SAVEPOINT s1;
INSERT INTO t_full VALUES (4, 'rolled back');
ROLLBACK TO s1;
COMMIT;
TRUNCATE t_nothing;
TRUNCATE t_full, t_toast RESTART IDENTITY CASCADE;
