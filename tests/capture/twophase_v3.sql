-- Two-phase commit: prepared then committed, prepared then rolled back,
-- and a large prepared transaction streamed (Stream Prepare). Protocol 3.
-- options: proto_version=3 publication_names=p two_phase=on streaming=on
-- twophase: true
-- work_mem: 64kB
SET client_min_messages = warning;
CREATE TABLE tp (id int PRIMARY KEY, v text);
CREATE PUBLICATION p FOR ALL TABLES;
-- capture
BEGIN;
INSERT INTO tp VALUES (1, 'commit me');
PREPARE TRANSACTION 'gid_commit';
COMMIT PREPARED 'gid_commit';
BEGIN;
INSERT INTO tp VALUES (2, 'roll me back');
PREPARE TRANSACTION 'gid_rollback';
ROLLBACK PREPARED 'gid_rollback';
BEGIN;
INSERT INTO tp SELECT g, 'x' FROM generate_series(100, 699) g;
PREPARE TRANSACTION 'gid_streamed';
COMMIT PREPARED 'gid_streamed';
