-- Binary tuple values ('b') for every common type. Protocol 2.
-- options: proto_version=2 publication_names=p binary=true
SET client_min_messages = warning;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t_bin (
    id bigint PRIMARY KEY, i2 smallint, i4 integer, n numeric(12,2),
    f8 double precision, b boolean, t text, ts timestamptz, d date,
    jb jsonb, u uuid, ba bytea, arr int[], m mood);
CREATE PUBLICATION p FOR ALL TABLES;
-- capture
INSERT INTO t_bin VALUES
  (1, 7, -7, 3.14, 2.5, false, 'text', '2000-01-01 00:00:00+00',
   '1999-12-31', '{"k": "v"}', '00000000-0000-0000-0000-000000000001',
   '\xdeadbeef', '{1,2,NULL}', 'ok'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL);
UPDATE t_bin SET t = 'more', i4 = 0 WHERE id = 1;
DELETE FROM t_bin WHERE id = 2;
