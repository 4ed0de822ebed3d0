/*
 * schema: (being written)
 */
#ifndef CLEAVE_DAEMON_SCHEMA_H
#define CLEAVE_DAEMON_SCHEMA_H
#endif
