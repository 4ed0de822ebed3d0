/*
 * decoder_bench: decoder throughput over a captured stream, in memory.
 *   decoder_bench FILE.stream [ROUNDS]
 *
 * Decodes every frame (frame_decode, then pgo_decode for XLogData) ROUNDS
 * times on one decoder, reset between rounds as after a reconnect. Without
 * ROUNDS, a warm-up decides how many fill about two seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "decoder/frame.h"
#include "decoder/pgoutput.h"
#include "tests/support/streamfile.h"

#define TARGET_SECONDS 2.0

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass over the stream; returns the messages decoded, or -1. */
static long one_round(pgo_decoder *dec, const sf_stream *s)
{
    long messages = 0;
    pgo_reset(dec);
    for (size_t i = 0; i < s->n; i++) {
        frame f;
        pgo_msg m;
        rb_error err;
        if (!frame_decode(s->frames[i].data, s->frames[i].len, &f, &err))
            goto fail;
        if (f.kind != FRAME_XLOGDATA)
            continue;
        if (!pgo_decode(dec, f.data, f.data_len, &m, &err))
            goto fail;
        messages++;
        continue;
fail:
        fprintf(stderr, "decoder_bench: frame %zu at %zu: %s\n", i, err.offset,
                err.msg);
        return -1;
    }
    return messages;
}

static pgo_decoder *decoder_for(const sf_stream *s)
{
    char *v = sf_option(s, "proto_version");
    pgo_options o = {.proto_version = v ? atoi(v) : 1};
    free(v);
    return pgo_new(&o);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: decoder_bench FILE.stream [ROUNDS]\n");
        return 2;
    }
    sf_stream s;
    char err[512];
    if (!sf_load(argv[1], &s, err, sizeof err)) {
        fprintf(stderr, "decoder_bench: %s\n", err);
        return 1;
    }
    pgo_decoder *dec = decoder_for(&s);
    if (!dec) {
        fprintf(stderr, "decoder_bench: %s: unsupported options \"%s\"\n",
                argv[1], s.options);
        return 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < s.n; i++)
        bytes += s.frames[i].len;

    /* Without ROUNDS, double a warm-up run until it takes a tenth of a
     * second, then scale it to the target. */
    long messages = one_round(dec, &s);
    long rounds = argc == 3 ? atol(argv[2]) : 0;
    for (long n = 1; rounds <= 0 && messages >= 0; n *= 2) {
        double t0 = now();
        for (long r = 0; r < n && messages >= 0; r++)
            messages = one_round(dec, &s);
        double took = now() - t0;
        if (took >= 0.1)
            rounds = (long)((double)n * TARGET_SECONDS / took) + 1;
    }

    double t0 = now();
    for (long r = 0; r < rounds && messages >= 0; r++)
        messages = one_round(dec, &s);
    double secs = now() - t0;
    if (messages < 0)
        return 1;
    printf("bytes %zu frames %zu messages %ld rounds %ld seconds %.3f\n",
           bytes, s.n, messages, rounds, secs);
    printf("%.1f MB/s, %.0f messages/s\n",
           (double)bytes * (double)rounds / secs / 1e6,
           (double)messages * (double)rounds / secs);
    pgo_free(dec);
    sf_free(&s);
    return 0;
}
