/*
 * allocs.c - libexoplex_bench_allocs.so: counts heap allocations of a
 * process it is LD_PRELOADed into, for bench/run.sh.
 *
 * malloc, calloc, realloc (and posix_memalign, aligned_alloc) calls are
 * counted, split into the main thread (whose tid is the pid: the event
 * loop of every exoplex process) and all other threads (NNG's, admin).
 * Every second a thread writes the totals into
 * $EXOPLEX_BENCH_ALLOCS_DIR/allocs.<pid> as one line:
 *
 *   main <n> other <n>
 *
 * The bench divides the growth over its steady window by the frames the
 * process handled (from /metrics): a per-frame allocation shows as about
 * one per frame or more. Benchmark use only: it costs an atomic add per
 * call.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_memalign)(void **, size_t, size_t);
static void *(*real_aligned)(size_t, size_t);
static void (*real_free)(void *);

static _Atomic uint64_t n_main, n_other;
static __thread int     is_main = -1;

/* dlsym may calloc before real_calloc is known: serve that from here. */
static char   boot[4096];
static size_t boot_used;

static void
count(void)
{
	if (is_main < 0)
		is_main = syscall(SYS_gettid) == getpid();
	if (is_main)
		atomic_fetch_add_explicit(&n_main, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&n_other, 1, memory_order_relaxed);
}

static void
resolve(void)
{
	static int busy;

	if (real_malloc || busy)
		return;
	busy          = 1;
	real_calloc   = dlsym(RTLD_NEXT, "calloc");
	real_malloc   = dlsym(RTLD_NEXT, "malloc");
	real_realloc  = dlsym(RTLD_NEXT, "realloc");
	real_memalign = dlsym(RTLD_NEXT, "posix_memalign");
	real_aligned  = dlsym(RTLD_NEXT, "aligned_alloc");
	real_free     = dlsym(RTLD_NEXT, "free");
	busy          = 0;
}

void *
malloc(size_t n)
{
	resolve();
	count();
	return real_malloc(n);
}

void *
calloc(size_t k, size_t n)
{
	if (!real_calloc) {
		/* During dlsym: a zeroed slice of boot, never freed. */
		size_t want = (k * n + 15) & ~(size_t)15;
		resolve();
		if (!real_calloc) {
			if (boot_used + want > sizeof(boot))
				return NULL;
			boot_used += want;
			return boot + boot_used - want;
		}
	}
	count();
	return real_calloc(k, n);
}

void *
realloc(void *p, size_t n)
{
	resolve();
	count();
	return real_realloc(p, n);
}

int
posix_memalign(void **p, size_t a, size_t n)
{
	resolve();
	count();
	return real_memalign(p, a, n);
}

void *
aligned_alloc(size_t a, size_t n)
{
	resolve();
	count();
	return real_aligned(a, n);
}

void
free(void *p)
{
	if ((char *)p >= boot && (char *)p < boot + sizeof(boot))
		return;
	resolve();
	real_free(p);
}

static void *
writer(void *arg)
{
	char path[512], line[128];
	int  fd;

	snprintf(path, sizeof(path), "%s/allocs.%d", (const char *)arg,
	    (int)getpid());
	for (;;) {
		int n = snprintf(line, sizeof(line), "main %llu other %llu\n",
		    (unsigned long long)atomic_load(&n_main),
		    (unsigned long long)atomic_load(&n_other));
		if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644))
		    >= 0) {
			if (write(fd, line, (size_t)n) < 0) {
				/* nothing to do: the next second tries again
				 */
			}
			close(fd);
		}
		sleep(1);
	}
	return NULL;
}

__attribute__((constructor)) static void
start(void)
{
	static char dir[400];
	const char *d = getenv("EXOPLEX_BENCH_ALLOCS_DIR");
	pthread_t   t;

	resolve();
	if (!d || !*d)
		return;
	snprintf(dir, sizeof(dir), "%s", d);
	if (pthread_create(&t, NULL, writer, dir) == 0)
		pthread_detach(t);
}
