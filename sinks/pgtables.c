/*
 * pgtables: configured tables as SQL; see pgtables.h.
 */
#include "sinks/pgtables.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "schema"."name", quoted by libpq; NULL when it cannot. */
static char *quote_table(PGconn *c, const cfg_table *t)
{
    char *s = PQescapeIdentifier(c, t->schema, strlen(t->schema));
    char *n = PQescapeIdentifier(c, t->name, strlen(t->name));
    char *q = NULL;
    if (s && n) {
        size_t len = strlen(s) + strlen(n) + 2;
        q = malloc(len);
        if (q)
            snprintf(q, len, "%s.%s", s, n);
    }
    PQfreemem(s);
    PQfreemem(n);
    return q;
}

char **pgtables_quoted(PGconn *c, const cfg_table *t, size_t n)
{
    char **q = calloc(n ? n : 1, sizeof *q);
    for (size_t i = 0; q && i < n; i++)
        if (!(q[i] = quote_table(c, &t[i]))) {
            pgtables_free(q, i);
            return NULL;
        }
    return q;
}

void pgtables_free(char **quoted, size_t n)
{
    for (size_t i = 0; quoted && i < n; i++)
        free(quoted[i]);
    free(quoted);
}

char *pgtables_join(char *const *quoted, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s", i ? ", " : "", quoted[i]);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *pgtables_param_array(int first, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return NULL;
    fputs("ARRAY[", out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s$%zu", i ? ", " : "", (size_t)first + i);
    fputs("]::text[]", out);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

void pgtables_err(PGconn *c, const PGresult *res, const char *what,
                  char *err, size_t errlen)
{
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          : NULL;
    if (!msg)
        msg = PQerrorMessage(c);
    snprintf(err, errlen, "%s: %s", what, msg);
    size_t len = strlen(err);
    while (len > 0 && err[len - 1] == '\n')
        err[--len] = '\0';
}

PGresult *pgtables_query(PGconn *c, const char *sql, const char *const *params,
                         size_t n, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(c, sql, (int)n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    pgtables_err(c, res, what, err, errlen);
    PQclear(res);
    return NULL;
}
