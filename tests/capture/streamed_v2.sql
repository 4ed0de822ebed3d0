-- In-progress transactions streamed (logical_decoding_work_mem=64kB):
-- one committed, one aborted, one with a subtransaction rolled back.
-- options: proto_version=2 publication_names=p streaming=on
-- work_mem: 64kB
SET client_min_messages = warning;
CREATE TABLE big (id int PRIMARY KEY, v text);
CREATE PUBLICATION p FOR ALL TABLES;
-- capture
INSERT INTO big SELECT g, 'x' FROM generate_series(1, 600) g;
BEGIN;
INSERT INTO big SELECT g, 'a' FROM generate_series(1001, 1600) g;
ROLLBACK;
BEGIN;
INSERT INTO big SELECT g, 'b' FROM generate_series(2001, 2600) g;
SAVEPOINT s1;
INSERT INTO big SELECT g, 'c' FROM generate_series(3001, 3600) g;
ROLLBACK TO s1;
INSERT INTO big VALUES (4001, 'after');
COMMIT;
INSERT INTO big VALUES (5001, 'small');
