/* runcmd: run a program, capture stdout and stderr; see runcmd.h. */
#include "tests/support/runcmd.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct sink {
    int fd;
    char *buf;
    size_t len;
} sink;

static void drain(sink *s)
{
    char chunk[4096];
    ssize_t n = read(s->fd, chunk, sizeof chunk);
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    char *nb = realloc(s->buf, s->len + (size_t)n + 1);
    if (!nb)
        return;
    memcpy(nb + s->len, chunk, (size_t)n);
    s->len += (size_t)n;
    nb[s->len] = '\0';
    s->buf = nb;
}

int rc_run(char *const argv[], rc_result *res)
{
    int outp[2], errp[2];
    *res = (rc_result){.status = -1};
    if (pipe(outp) != 0 || pipe(errp) != 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        close(outp[0]);
        close(errp[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(outp[1]);
    close(errp[1]);
    sink s[2] = {{outp[0], NULL, 0}, {errp[0], NULL, 0}};
    while (s[0].fd >= 0 || s[1].fd >= 0) {
        struct pollfd p[2] = {{s[0].fd, POLLIN, 0}, {s[1].fd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++)
            if (s[i].fd >= 0 && p[i].revents)
                drain(&s[i]);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    res->out = s[0].buf ? s[0].buf : strdup("");
    res->err = s[1].buf ? s[1].buf : strdup("");
    return 1;
}

void rc_free(rc_result *res)
{
    free(res->out);
    free(res->err);
    *res = (rc_result){0};
}

bool rc_running(int pid)
{
    char path[64], state = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
            state = '?';
        fclose(f);
    }
    return f && state != 'Z';
}
