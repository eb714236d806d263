/*
 * nngcost.c - exoplex-bench-nng: what one NNG message costs on this
 * machine, in CPU on each end.
 *
 * Two processes, a pair1 socket each over ipc://, as the bus links are: the
 * sender sends --rate messages a second of --bytes each for --seconds
 * (nonblocking, on one aio kept for the run, sleeping between them as a
 * process waiting for its next frames does); the receiver waits on the
 * socket's NNG_OPT_RECVFD with poll(2) and takes what is there, as the
 * processes' event loops do. Each end reports its own CPU (getrusage,
 * every thread, NNG's included) per message: the price the bus's hold
 * (docs/bus.md) trades a few milliseconds against. One JSON line on
 * stdout. Not a test: it measures time.
 */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static double
mono_s(void)
{
	return (double)mono_us() / 1e6;
}

static double
cpu_s(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6
	    + (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6;
}

/* Receives until the sender has been quiet for a second; writes "n cpu"
 * to fd. Returns 0, or an NNG error. */
static int
receive(const char *url, int fd)
{
	nng_socket s;
	nng_aio   *aio = NULL;
	long       n   = 0;
	double     c0 = 0, c1 = 0;
	int        rv, rfd;
	char       line[64];

	if ((rv = nng_pair1_open(&s)) != 0)
		return rv;
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0
	    || (rv = nng_listen(s, url, NULL, 0)) != 0
	    || (rv = nng_socket_get_int(s, NNG_OPT_RECVFD, &rfd)) != 0)
		goto out;
	nng_aio_set_timeout(aio, NNG_DURATION_ZERO);
	if (write(fd, "ready\n", 6) != 6) {
		rv = NNG_EINTERNAL;
		goto out;
	}
	for (;;) {
		struct pollfd p = { .fd = rfd, .events = POLLIN };

		if (poll(&p, 1, n ? 1000 : 10000) <= 0)
			break;
		for (;;) {
			nng_recv_aio(s, aio);
			nng_aio_wait(aio);
			if (nng_aio_result(aio) != 0)
				break;
			if (n++ == 0)
				c0 = cpu_s(); /* from the first message on */
			nng_msg_free(nng_aio_get_msg(aio));
		}
		c1 = cpu_s();
	}
	snprintf(line, sizeof(line), "%ld %.6f\n", n, c1 - c0);
	if (write(fd, line, strlen(line)) < 0)
		rv = NNG_EINTERNAL;
out:
	nng_aio_free(aio);
	nng_close(s);
	return rv;
}

/* Sends rate messages a second for secs. Returns 0 or an NNG error;
 * *sent and *cpu: messages sent, CPU seconds taken. */
static int
send_all(const char *url, long rate, double secs, size_t bytes, long *sent,
    double *cpu)
{
	nng_socket s;
	nng_aio   *aio = NULL;
	double     t0, c0, per = 1.0 / (double)rate;
	long       i = 0;
	int        rv;

	*sent = 0;
	if ((rv = nng_pair1_open(&s)) != 0)
		return rv;
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0
	    || (rv = nng_dial(s, url, NULL, 0)) != 0)
		goto out;
	nng_aio_set_timeout(aio, NNG_DURATION_ZERO);
	usleep(100000); /* the pipe up on both ends */
	t0 = mono_s();
	c0 = cpu_s();
	while (mono_s() - t0 < secs) {
		nng_msg *m;
		double   wait;

		if ((rv = nng_msg_alloc(&m, bytes)) != 0)
			goto out;
		memset(nng_msg_body(m), 0x5a, bytes);
		nng_aio_set_msg(aio, m);
		nng_send_aio(s, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0)
			nng_msg_free(m); /* receiver full: not counted */
		else
			(*sent)++;
		wait = t0 + (double)++i * per - mono_s();
		if (wait > 0) {
			struct timespec ts = { (time_t)wait,
				(long)((wait - (double)(time_t)wait) * 1e9) };
			nanosleep(&ts, NULL);
		}
	}
	*cpu = cpu_s() - c0;
	rv   = 0;
	/* NNG 1.5 drops what a closed socket still queues: let it go out. */
	usleep(200000);
out:
	nng_aio_free(aio);
	nng_close(s);
	return rv;
}

int
main(int argc, char **argv)
{
	long   rate = 500, bytes = 4000, got = 0, sent = 0;
	double secs = 3, rcpu = 0, scpu = 0;
	char   url[128], line[64] = "";
	int    fds[2], rv, status = 1;
	pid_t  pid;
	FILE  *in;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = atol(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
			bytes = atol(argv[++i]);
		else {
			fprintf(stderr,
			    "usage: exoplex-bench-nng [--rate MSGS_PER_S] "
			    "[--seconds S] [--bytes N]\n");
			return 2;
		}
	}
	if (rate < 1 || rate > 100000 || secs <= 0 || secs > 600 || bytes < 1
	    || bytes > (1 << 20)) {
		fprintf(stderr,
		    "exoplex-bench-nng: --rate 1..100000, "
		    "--seconds 0..600, --bytes 1..1048576\n");
		return 2;
	}
	snprintf(url, sizeof(url), "ipc:///tmp/exoplex-bench-nng.%ld",
	    (long)getpid());
	if (pipe(fds) != 0 || (pid = fork()) < 0) {
		perror("exoplex-bench-nng");
		return 1;
	}
	if (pid == 0) {
		close(fds[0]);
		rv = receive(url, fds[1]);
		if (rv != 0)
			fprintf(stderr, "exoplex-bench-nng: receiver: %s\n",
			    nng_strerror(rv));
		_exit(rv != 0);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in || !fgets(line, sizeof(line), in) || strcmp(line, "ready\n")) {
		fprintf(
		    stderr, "exoplex-bench-nng: the receiver did not start\n");
		kill(pid, SIGKILL);
		goto out;
	}
	if ((rv = send_all(url, rate, secs, (size_t)bytes, &sent, &scpu)) != 0
	    || sent < 1) {
		fprintf(stderr, "exoplex-bench-nng: sender: %s\n",
		    rv ? nng_strerror(rv) : "nothing sent");
		kill(pid, SIGKILL);
		goto out;
	}
	if (!fgets(line, sizeof(line), in)
	    || sscanf(line, "%ld %lf", &got, &rcpu) != 2 || got < 1) {
		fprintf(
		    stderr, "exoplex-bench-nng: the receiver got nothing\n");
		goto out;
	}
	printf("{\"rate\": %ld, \"seconds\": %g, \"bytes\": %ld, \"sent\": "
	       "%ld, \"received\": %ld, \"sender_us_per_msg\": %.1f, "
	       "\"receiver_us_per_msg\": %.1f}\n",
	    rate, secs, bytes, sent, got, scpu / (double)sent * 1e6,
	    rcpu / (double)got * 1e6);
	status = 0;
out:
	if (in)
		fclose(in);
	waitpid(pid, &rv, 0);
	unlink(url + strlen("ipc://"));
	return status;
}
