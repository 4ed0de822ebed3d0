-- Logical messages (transactional and not) and a transaction replayed
-- under a replication origin (Origin message). Protocol 2.
-- options: proto_version=2 publication_names=p messages=true
SET client_min_messages = warning;
CREATE TABLE outbox_src (id int PRIMARY KEY, v text);
CREATE PUBLICATION p FOR ALL TABLES;
SELECT pg_replication_origin_create('cleave_other');
-- capture
SELECT pg_logical_emit_message(false, 'cleave_test', 'non-transactional');
BEGIN;
INSERT INTO outbox_src VALUES (1, 'one');
SELECT pg_logical_emit_message(true, 'outbox', '{"event": "created", "id": 1}');
SELECT pg_logical_emit_message(true, 'outbox', '\x00010203'::bytea);
COMMIT;
SELECT pg_replication_origin_session_setup('cleave_other');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/12345678', '2026-11-24 08:00:00+00');
INSERT INTO outbox_src VALUES (2, 'from elsewhere');
COMMIT;
SELECT pg_replication_origin_session_reset();
