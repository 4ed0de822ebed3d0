/*
 * kafkasink: a service's changes as Debezium events on Kafka topics, at
 * least once, in order per key.
 *
 * One idempotent librdkafka producer (acks=all, lz4, batched by
 * librdkafka's own linger) shared by every service's sink of a
 * configuration: one set of broker threads, one request per broker for
 * every service's partitions. Events are produced as they come, never
 * flushed one by one; each sink keeps its own acknowledgements, failure
 * and checkpoint, and waits only for its own messages. Delivery reports drive progress: the sink's durable
 * position is the end LSN of the last source transaction whose every
 * message the broker acknowledged, and all before it. That position is
 * written to state_dir/kafka/<service>.json (replaced atomically) before
 * it is reported, so after any restart the stream resumes after it: what
 * the broker holds for certain is never produced again, what it might
 * hold is produced again (at least once).
 *
 * A message the broker refuses for good (too large, not authorised) or a
 * delivery timeout fails the sink whose message it was; every broker down
 * or a fatal producer error fails every sink on the producer. A failed
 * sink leaves the producer (reports for its messages still in flight are
 * dropped, the others' go on); the worker reopens it with backoff, and
 * the replay from the checkpoint sends whatever was not acknowledged.
 */
#ifndef CLEAVE_SINKS_KAFKASINK_H
#define CLEAVE_SINKS_KAFKASINK_H

#include <stdint.h>

#include "sinks/sink.h"

/* A sink for a service with kafka: true; NULL when out of memory. */
sink *kafkasink_new(const cfg *config, const cfg_service *service);
void kafkasink_free(sink *s);

/* state_dir/kafka/<service>.json, malloc'd. */
char *kafkasink_checkpoint_path(const cfg *config, const cfg_service *service);

/*
 * The source database's name for source.db: the connection string's
 * dbname, else PGDATABASE, else the user name as libpq would pick it.
 * malloc'd.
 */
char *kafkasink_source_db(const char *dsn);

/*
 * A librdkafka configuration for cleave's producers: cleave's defaults,
 * then kafka.properties over them. NULL with err when librdkafka refuses
 * a setting.
 */
struct rd_kafka_conf_s;
struct rd_kafka_conf_s *kafkasink_conf(const cfg *config, char *err,
                                       size_t errlen);

/*
 * The initial sync's loader (sink.h, sink_loader): each row as a Debezium
 * snapshot event (op "r", source.lsn the snapshot's), through a producer
 * of its own set up as the sink's. The last row of each table is held
 * back until end says whether it is the last of the service's whole
 * snapshot (source.snapshot "last") or not ("true"). NULL with err when
 * the producer cannot be made.
 */
sink_loader *kafkasink_loader(const cfg *config, const cfg_service *service,
                              char *err, size_t errlen);

#endif
