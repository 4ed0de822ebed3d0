/*
 * evlog: (being written)
 */
#ifndef CLEAVE_SINKS_EVLOG_H
#define CLEAVE_SINKS_EVLOG_H
#endif
