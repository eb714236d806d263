/*
 * floor.c - exoplex-bench-floor: the codec floor of one call.
 *
 * Runs the library calls the transcoder makes for one call, with its
 * settings and its slicing, in a tight loop over S seconds of a
 * speech-like signal, and reports the CPU they take per second of call:
 *
 *   up:   soxr call rate -> Opus rate in 10 ms slices (tcall_uplink),
 *         Opus encode of 20 ms frames (each complexity asked for)
 *   down: Opus decode of 80 ms packets as PersonaPlex sends them (sphn:
 *         24 kHz VOIP, libopus defaults) straight at the call's rate
 *         (tcall_packet: no resampler on the way down)
 *
 * It links the transcoder's own library (resample.c, codec.c), so the
 * settings cannot drift. Two profiles: "default" (Opus at 24 kHz) and
 * "call" (Opus at the call's rate: EXOPLEX_OPUS_RATE=call). Each stage is
 * timed as one block with CLOCK_THREAD_CPUTIME_ID, repeated --reps times;
 * the median is reported. Output: a table, or one JSON object (--json).
 *
 * --probe MS measures the same floor while a load runs: every MS
 * milliseconds it carries one more 400 ms stretch of the calls' own audio
 * (--seed, --seconds as exoplex-call's) through one call's resampler,
 * encoder and decoder, until SIGTERM, then prints what those stretches
 * cost. This VM's speed swings by half within seconds (the host's other
 * tenants), so a floor taken before a load run can be off by that much
 * from the speed the load ran at; the probe sees the same moments.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opus/opus.h>

#include "callaudio.h"
#include "codec.h"
#include "resample.h"

#define MAX_REPS 15
#define DOWN_PACKET 1920 /* 80 ms at 24 kHz: one PersonaPlex step */

struct args {
	double   seconds;
	int      reps;
	int      rate;
	int      cx[11];
	int      ncx;
	int      def_cx;
	int      bitrate;
	int      states;
	int      json;
	uint64_t seed;
	int      probe_ms; /* 0: the floor; else --probe's period */
	int      probe_rate; /* Opus rate under --probe: 24000 or the call's */
};

/* A stage's CPU per call-second, median of the repetitions. */
struct stage {
	double ms[MAX_REPS];
	int    n;
};

struct profile {
	const char  *name;
	int          opus_rate;
	struct stage up_rs, dec;
	struct stage enc[11];
	double       up_backlog_ms; /* mean soxr backlog */
	double       up_bytes_s[11]; /* uplink Opus bytes per second */
	double       snr_db[11]; /* encode_snr */
	int          lookahead; /* samples at opus_rate */
};

static double
cpu_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(const struct stage *s)
{
	double v[MAX_REPS];

	if (s->n == 0)
		return 0;
	memcpy(v, s->ms, (size_t)s->n * sizeof(v[0]));
	qsort(v, (size_t)s->n, sizeof(v[0]), cmp_double);
	return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

/* Resamples in[0..n) in slices of `slice` samples as the transcoder
 * does, into out (cap samples). Returns the samples written, or 0 on
 * error; *backlog_ms gets the mean of (input time - output time). */
static size_t
resample_run(int in_rate, int out_rate, const int16_t *in, size_t n,
    size_t slice, int16_t *out, size_t cap, double *backlog_ms, double *ms)
{
	struct resample *r;
	size_t           done = 0, made = 0, slices = 0;
	double           t0, backlog = 0;

	if (resample_alloc(&r, in_rate, out_rate))
		return 0;
	t0 = cpu_ms();
	while (done < n) {
		size_t k = n - done < slice ? n - done : slice, got = 0;
		if (made + resample_out_max(r, k) > cap
		    || resample_process(
		        r, in + done, k, out + made, cap - made, &got)) {
			resample_free(r);
			return 0;
		}
		done += k;
		made += got;
		backlog += (double)done / in_rate - (double)made / out_rate;
		slices++;
	}
	*ms         = cpu_ms() - t0;
	*backlog_ms = slices ? backlog / (double)slices * 1e3 : 0;
	resample_free(r);
	return made;
}

/* Encodes pcm (at rate, from a call at src_rate) in 20 ms frames with
 * each of `states` encoders in turn, as a transcoder thread serving that
 * many calls does (their states then compete for the caches); *ms is per
 * encoder. Returns 0 or EIO (ENOMEM). */
static int
encode_run(int rate, int src_rate, int cx, int bitrate, int states,
    const int16_t *pcm, size_t n, double *ms, size_t *bytes, int *lookahead)
{
	struct codec_enc **e = calloc((size_t)states, sizeof(*e));
	uint8_t            pkt[CODEC_MAX_PACKET];
	size_t             fr, len;
	double             t0;
	int                rc = 0, k;

	if (e == NULL)
		return ENOMEM;
	for (k = 0; k < states; k++)
		if (codec_enc_alloc_rate(&e[k], rate, src_rate, cx, bitrate)) {
			rc = EIO;
			goto out;
		}
	fr         = (size_t)codec_enc_frame(e[0]);
	*lookahead = codec_enc_lookahead(e[0]);
	*bytes     = 0;
	t0         = cpu_ms();
	for (size_t off = 0; off + fr <= n && rc == 0; off += fr)
		for (k = 0; k < states; k++) {
			if (codec_encode(
			        e[k], pcm + off, pkt, sizeof(pkt), &len)) {
				rc = EIO;
				break;
			}
			if (k == 0)
				*bytes += len;
		}
	*ms = (cpu_ms() - t0) / states;
out:
	for (k = 0; k < states; k++)
		codec_enc_free(e[k]);
	free(e);
	return rc;
}

/* A quality proxy for choosing the complexity: the SNR (dB) of pcm
 * through encode and decode at rate, aligned by the encoder's look-ahead.
 * Opus is perceptual, so only compare complexities with each other. */
static double
encode_snr(
    int rate, int src_rate, int cx, int bitrate, const int16_t *pcm, size_t n)
{
	struct codec_enc *e;
	struct codec_dec *d;
	uint8_t           pkt[CODEC_MAX_PACKET];
	int16_t *out = malloc((n + CODEC_MAX_FRAME) * sizeof(int16_t));
	size_t   fr, len, got, made = 0, la;
	double   sig = 0, err = 0;

	if (out == NULL
	    || codec_enc_alloc_rate(&e, rate, src_rate, cx, bitrate)) {
		free(out);
		return 0;
	}
	if (codec_dec_alloc_rate(&d, rate)) {
		codec_enc_free(e);
		free(out);
		return 0;
	}
	fr = (size_t)codec_enc_frame(e);
	la = (size_t)codec_enc_lookahead(e);
	for (size_t off = 0; off + fr <= n; off += fr)
		if (codec_encode(e, pcm + off, pkt, sizeof(pkt), &len) == 0
		    && codec_decode(
		           d, pkt, len, out + made, CODEC_MAX_FRAME, &got)
		        == 0)
			made += got;
	/* The decoder's delay is the look-ahead in theory; take the best
	 * shift near it over the first 2 s, then measure everything. */
	size_t best     = la,
	       span     = made < (size_t)rate * 2 ? made : (size_t)rate * 2;
	double best_err = -1;
	for (size_t dl = 0; dl <= 2 * la + fr && dl < span; dl++) {
		double e2 = 0;
		for (size_t i = dl; i < span; i++) {
			double x = pcm[i - dl], y = out[i];
			e2 += (x - y) * (x - y);
		}
		if (best_err < 0 || e2 < best_err) {
			best_err = e2;
			best     = dl;
		}
	}
	for (size_t i = best; i < made; i++) {
		double x = pcm[i - best], y = out[i];
		sig += x * x;
		err += (x - y) * (x - y);
	}
	if (best != la)
		fprintf(stderr,
		    "snr: %d Hz cx%d: best shift %zu, look-ahead %zu\n", rate,
		    cx, best, la);
	codec_enc_free(e);
	codec_dec_free(d);
	free(out);
	return err > 0 ? 10 * log10(sig / err) : 99;
}

/* PersonaPlex's downlink: 80 ms packets from a 24 kHz VOIP encoder with
 * libopus defaults (sphn), made once, outside the timing. */
struct packets {
	uint8_t *data;
	size_t  *off, *len;
	size_t   n;
};

static int
packets_make(struct packets *p, const int16_t *pcm24, size_t n)
{
	OpusEncoder *e;
	int          err = 0;
	size_t       cap = n / DOWN_PACKET + 1, used = 0;

	memset(p, 0, sizeof(*p));
	p->data = malloc(cap * 1275 * 3);
	p->off  = calloc(cap, sizeof(size_t));
	p->len  = calloc(cap, sizeof(size_t));
	e       = opus_encoder_create(24000, 1, OPUS_APPLICATION_VOIP, &err);
	if (!p->data || !p->off || !p->len || !e)
		return ENOMEM;
	for (size_t i = 0; i + DOWN_PACKET <= n; i += DOWN_PACKET) {
		opus_int32 k = opus_encode(
		    e, pcm24 + i, DOWN_PACKET, p->data + used, 1275 * 3);
		if (k < 0)
			break;
		p->off[p->n]   = used;
		p->len[p->n++] = (size_t)k;
		used += (size_t)k;
	}
	opus_encoder_destroy(e);
	return 0;
}

static void
packets_free(struct packets *p)
{
	free(p->data);
	free(p->off);
	free(p->len);
}

/* Decodes every packet at rate into out. Returns the samples, 0 on
 * error. */
static size_t
decode_run(
    int rate, const struct packets *p, int16_t *out, size_t cap, double *ms)
{
	struct codec_dec *d;
	size_t            made = 0, got;
	double            t0;

	if (codec_dec_alloc_rate(&d, rate))
		return 0;
	t0 = cpu_ms();
	for (size_t i = 0; i < p->n && made + CODEC_MAX_FRAME <= cap; i++) {
		if (codec_decode(d, p->data + p->off[i], p->len[i], out + made,
		        CODEC_MAX_FRAME, &got))
			break;
		made += got;
	}
	*ms = cpu_ms() - t0;
	codec_dec_free(d);
	return made;
}

static int
run_profile(struct profile *pf, const struct args *a, const int16_t *call,
    size_t ncall, const struct packets *pk)
{
	size_t   cap   = (size_t)(a->seconds * 24000) + 65536;
	int16_t *up    = malloc(cap * sizeof(int16_t));
	int16_t *dn    = malloc(cap * sizeof(int16_t));
	double   secs  = (double)ncall / a->rate, ms;
	int      orate = pf->opus_rate;
	int      rc    = EIO;

	if (!up || !dn)
		goto out;
	for (int rep = 0; rep < a->reps; rep++) {
		size_t nup, ndn, bytes;

		nup = resample_run(a->rate, orate, call, ncall,
		    (size_t)a->rate / 100, up, cap, &pf->up_backlog_ms, &ms);
		if (nup == 0)
			goto out;
		pf->up_rs.ms[pf->up_rs.n++] = ms / secs;
		for (int i = 0; i < a->ncx; i++) {
			int cx = a->cx[i];
			if (encode_run(orate, a->rate, cx, a->bitrate,
			        a->states, up, nup, &ms, &bytes,
			        &pf->lookahead))
				goto out;
			pf->enc[cx].ms[pf->enc[cx].n++] = ms / secs;
			pf->up_bytes_s[cx]              = (double)bytes / secs;
			if (rep == 0)
				pf->snr_db[cx] = encode_snr(
				    orate, a->rate, cx, a->bitrate, up, nup);
		}
		/* The downlink: as many seconds of PersonaPlex's 24 kHz
		 * stream, decoded straight at the call's rate as tcall.c
		 * does (no resampler on the way down). */
		ndn = decode_run(a->rate, pk, dn, cap, &ms);
		if (ndn == 0)
			goto out;
		pf->dec.ms[pf->dec.n++] = ms / ((double)ndn / a->rate);
	}
	rc = 0;
out:
	free(up);
	free(dn);
	return rc;
}

static double
total(const struct profile *pf, int cx)
{
	return median(&pf->up_rs) + median(&pf->enc[cx]) + median(&pf->dec);
}

static void
print_table(
    const struct args *a, struct profile *pf, int np, const char *engine)
{
	printf("codec floor: %.0f s of speech-like %d Hz audio, %d reps "
	       "(median), soxr engine %s, libopus %s\n",
	    a->seconds, a->rate, a->reps, engine, opus_get_version_string());
	printf("ms CPU per call-second (one core)%s:\n",
	    a->states > 1 ? ", each encoder one of many in turn" : "");
	if (a->states > 1)
		printf("encoders in turn: %d\n", a->states);
	for (int p = 0; p < np; p++) {
		printf("\nprofile %s (Opus at %d Hz, lookahead %.1f ms):\n",
		    pf[p].name, pf[p].opus_rate,
		    pf[p].lookahead * 1000.0 / pf[p].opus_rate);
		printf("  soxr %d->%d        %7.3f  (backlog %.1f ms)\n",
		    a->rate, pf[p].opus_rate, median(&pf[p].up_rs),
		    pf[p].up_backlog_ms);
		printf("  opus decode at %d %7.3f\n", a->rate,
		    median(&pf[p].dec));
		for (int i = 0; i < a->ncx; i++) {
			int cx = a->cx[i];
			printf("  opus encode cx%-2d    %7.3f  -> floor %7.3f "
			       "ms/s = %5.1f calls per core  (%.0f B/s, SNR "
			       "%.1f dB)%s\n",
			    cx, median(&pf[p].enc[cx]), total(&pf[p], cx),
			    1000.0 / total(&pf[p], cx), pf[p].up_bytes_s[cx],
			    pf[p].snr_db[cx],
			    cx == a->def_cx ? "  <- default" : "");
		}
	}
}

static void
print_stage(const char *name, const struct stage *s, int last)
{
	printf("\"%s\":{\"median\":%.4f,\"runs\":[", name, median(s));
	for (int i = 0; i < s->n; i++)
		printf("%s%.4f", i ? "," : "", s->ms[i]);
	printf("]}%s", last ? "" : ",");
}

static void
print_json(
    const struct args *a, struct profile *pf, int np, const char *engine)
{
	printf("{\"seconds\":%.1f,\"reps\":%d,\"rate\":%d,\"bitrate\":%d,"
	       "\"default_complexity\":%d,\"states\":%d,"
	       "\"soxr_engine\":\"%s\","
	       "\"libopus\":\"%s\",\"unit\":\"ms CPU per call-second\","
	       "\"profiles\":{",
	    a->seconds, a->reps, a->rate, a->bitrate, a->def_cx, a->states,
	    engine, opus_get_version_string());
	for (int p = 0; p < np; p++) {
		printf("%s\"%s\":{\"opus_rate\":%d,\"lookahead_ms\":%.2f,"
		       "\"up_backlog_ms\":%.2f,\"decode_rate\":%d,",
		    p ? "," : "", pf[p].name, pf[p].opus_rate,
		    pf[p].lookahead * 1000.0 / pf[p].opus_rate,
		    pf[p].up_backlog_ms, a->rate);
		print_stage("resample_up", &pf[p].up_rs, 0);
		print_stage("decode", &pf[p].dec, 0);
		printf("\"encode\":{");
		for (int i = 0; i < a->ncx; i++) {
			int  cx = a->cx[i];
			char k[16];
			snprintf(k, sizeof(k), "%d", cx);
			print_stage(k, &pf[p].enc[cx], i == a->ncx - 1);
		}
		printf("},\"floor\":{");
		for (int i = 0; i < a->ncx; i++)
			printf("%s\"%d\":%.4f", i ? "," : "", a->cx[i],
			    total(&pf[p], a->cx[i]));
		printf("},\"uplink_bytes_per_s\":{");
		for (int i = 0; i < a->ncx; i++)
			printf("%s\"%d\":%.0f", i ? "," : "", a->cx[i],
			    pf[p].up_bytes_s[a->cx[i]]);
		printf("},\"snr_db\":{");
		for (int i = 0; i < a->ncx; i++)
			printf("%s\"%d\":%.2f", i ? "," : "", a->cx[i],
			    pf[p].snr_db[a->cx[i]]);
		printf("}}");
	}
	printf("}}\n");
}

/* --probe: one call's pipeline, kept alive across stretches. */
#define PROBE_STRETCH_MS 400
#define PROBE_MAX 100000

static volatile sig_atomic_t probe_stop;

static void
probe_on_signal(int sig)
{
	(void)sig;
	probe_stop = 1;
}

struct probe {
	struct resample  *rs;
	struct codec_enc *enc;
	struct codec_dec *dec;
	int16_t          *up; /* resampled, not yet encoded */
	size_t            nup, cap;
	size_t            pos, pkt; /* next call sample, next packet */
	double            ms_rs, ms_enc, ms_dec, audio_s;
	double           *per; /* each stretch's ms per call-second */
	size_t            nper;
};

/* Carries stretch samples of call[] (looping) through the pipeline as
 * the transcoder does: soxr in 10 ms slices, Opus encode of whole
 * frames, and one 80 ms downlink packet decoded per 80 ms of call. */
static int
probe_stretch(struct probe *p, const struct args *a, const int16_t *call,
    size_t ncall, const struct packets *pk)
{
	size_t  slice   = (size_t)a->rate / 100, stretch, fr, len, got;
	size_t  per_pkt = (size_t)a->rate * 80 / 1000;
	uint8_t pkt[CODEC_MAX_PACKET];
	int16_t dn[CODEC_MAX_FRAME];
	double  t0, t1, t2, t3;

	stretch = (size_t)a->rate * PROBE_STRETCH_MS / 1000;
	fr      = (size_t)codec_enc_frame(p->enc);
	t0      = cpu_ms();
	for (size_t k = 0; k < stretch; k += slice) {
		if (p->pos + slice > ncall)
			p->pos = 0;
		if (p->nup + resample_out_max(p->rs, slice) > p->cap
		    || resample_process(p->rs, call + p->pos, slice,
		        p->up + p->nup, p->cap - p->nup, &got))
			return EIO;
		p->pos += slice;
		p->nup += got;
	}
	t1         = cpu_ms();
	size_t off = 0;
	for (; off + fr <= p->nup; off += fr)
		if (codec_encode(p->enc, p->up + off, pkt, sizeof(pkt), &len))
			return EIO;
	memmove(p->up, p->up + off, (p->nup - off) * sizeof(int16_t));
	p->nup -= off;
	t2 = cpu_ms();
	for (size_t k = 0; k < stretch; k += per_pkt) {
		if (p->pkt >= pk->n)
			p->pkt = 0;
		if (codec_decode(p->dec, pk->data + pk->off[p->pkt],
		        pk->len[p->pkt], dn, CODEC_MAX_FRAME, &got))
			return EIO;
		p->pkt++;
	}
	t3 = cpu_ms();
	p->ms_rs += t1 - t0;
	p->ms_enc += t2 - t1;
	p->ms_dec += t3 - t2;
	p->audio_s += (double)stretch / a->rate;
	if (p->nper < PROBE_MAX)
		p->per[p->nper++] = (t3 - t0) / PROBE_STRETCH_MS * 1000;
	return 0;
}

static double
pct(double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_double);
	return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

/* Runs stretches every a->probe_ms until SIGTERM or SIGINT, then prints
 * one JSON object. Returns 0 or an errno. */
static int
probe_run(const struct args *a, const int16_t *call, size_t ncall,
    const struct packets *pk)
{
	struct probe    p = { 0 };
	struct timespec next;
	int             cx = a->def_cx, rc = ENOMEM;

	signal(SIGTERM, probe_on_signal);
	signal(SIGINT, probe_on_signal);
	p.cap = (size_t)CODEC_RATE * PROBE_STRETCH_MS / 1000 + 4096;
	p.up  = malloc(p.cap * sizeof(int16_t));
	p.per = malloc(PROBE_MAX * sizeof(double));
	if (!p.up || !p.per)
		goto out;
	rc = EIO;
	if (resample_alloc(&p.rs, a->rate, a->probe_rate)
	    || codec_enc_alloc_rate(
	        &p.enc, a->probe_rate, a->rate, cx, a->bitrate)
	    || codec_dec_alloc_rate(&p.dec, a->rate))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!probe_stop) {
		if ((rc = probe_stretch(&p, a, call, ncall, pk)) != 0)
			goto out;
		next.tv_nsec += (long)a->probe_ms * 1000000L;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (!probe_stop
		    && clock_nanosleep(
		           CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL)
		        == EINTR)
			;
	}
	double s = p.audio_s > 0 ? p.audio_s : 1;
	printf("{\"probe_ms\":%d,\"stretch_ms\":%d,\"stretches\":%zu,"
	       "\"audio_s\":%.1f,\"opus_rate\":%d,\"complexity\":%d,"
	       "\"unit\":\"ms CPU per call-second\",\"resample_up\":%.4f,"
	       "\"encode\":%.4f,\"decode\":%.4f,\"floor\":%.4f,"
	       "\"stretch_p10\":%.4f,\"stretch_p50\":%.4f,"
	       "\"stretch_p90\":%.4f}\n",
	    a->probe_ms, PROBE_STRETCH_MS, p.nper, p.audio_s, a->probe_rate,
	    cx, p.ms_rs / s, p.ms_enc / s, p.ms_dec / s,
	    (p.ms_rs + p.ms_enc + p.ms_dec) / s, pct(p.per, p.nper, 0.1),
	    pct(p.per, p.nper, 0.5), pct(p.per, p.nper, 0.9));
	rc = 0;
out:
	resample_free(p.rs);
	codec_enc_free(p.enc);
	codec_dec_free(p.dec);
	free(p.up);
	free(p.per);
	return rc;
}

static int
parse_cx(struct args *a, const char *s)
{
	char *end;

	a->ncx = 0;
	while (*s) {
		long lo = strtol(s, &end, 10), hi = lo;
		if (end == s)
			return EINVAL;
		if (*end == '-') {
			s  = end + 1;
			hi = strtol(s, &end, 10);
			if (end == s)
				return EINVAL;
		}
		for (long c = lo; c <= hi; c++) {
			if (c < 0 || c > 10 || a->ncx >= 11)
				return EINVAL;
			a->cx[a->ncx++] = (int)c;
		}
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return EINVAL;
	}
	return a->ncx ? 0 : EINVAL;
}

static void
usage(const char *prog)
{
	printf("usage: %s [options]\n"
	       "The codec floor: CPU per call-second of the transcoder's "
	       "library calls\n"
	       "(soxr up, Opus encode, Opus decode at the call's rate) in a "
	       "tight loop.\n\n"
	       "  --seconds S        audio per repetition (30)\n"
	       "  --reps N           repetitions; the median is reported "
	       "(3, max %d)\n"
	       "  --rate HZ          the call's rate: 8000|16000|24000 "
	       "(8000)\n"
	       "  --complexity LIST  encoder complexities, e.g. 0-10 or "
	       "0,3,5 (0-10)\n"
	       "  --default-complexity N  the one marked default (5)\n"
	       "  --bitrate B        encoder bit/s (24000)\n"
	       "  --states N         encode with N encoders in turn, as a "
	       "thread serving\n"
	       "                     N calls does (1): the cost of their "
	       "caches\n"
	       "  --json             one JSON object instead of a table\n"
	       "  --seed N           the speech signal's seed (1)\n"
	       "  --probe MS         while a load runs: every MS ms, one more "
	       "400 ms\n"
	       "                     of the calls' audio through one call's "
	       "pipeline at\n"
	       "                     --default-complexity, until SIGTERM; "
	       "prints JSON\n"
	       "  --probe-rate R     the Opus rate under --probe: 24000 or "
	       "call (24000)\n",
	    prog, MAX_REPS);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "rate", required_argument, NULL, 'R' },
		{ "complexity", required_argument, NULL, 'c' },
		{ "default-complexity", required_argument, NULL, 'd' },
		{ "bitrate", required_argument, NULL, 'b' },
		{ "states", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "seed", required_argument, NULL, 'S' },
		{ "probe", required_argument, NULL, 'p' },
		{ "probe-rate", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args           a               = { .seconds = 30,
		                        .reps              = 3,
		                        .rate              = 8000,
		                        .def_cx            = CODEC_COMPLEXITY_DEF,
		                        .bitrate           = CODEC_BITRATE_DEF,
		                        .states            = 1,
		                        .seed              = 1,
		                        .probe_rate        = CODEC_RATE };
	int                   probe_call_rate = 0;
	static struct profile pf[2];
	struct packets        pk;
	int16_t              *call = NULL, *voice = NULL;
	size_t                ncall, nvoice;
	char                  engine[32];
	int                   opt, np = 0, rc = 1;

	parse_cx(&a, "0-10");
	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 's':
			a.seconds = atof(optarg);
			break;
		case 'r':
			a.reps = atoi(optarg);
			break;
		case 'R':
			a.rate = atoi(optarg);
			break;
		case 'c':
			if (parse_cx(&a, optarg)) {
				fprintf(stderr,
				    "--complexity: bad list '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
			a.def_cx = atoi(optarg);
			break;
		case 'b':
			a.bitrate = atoi(optarg);
			break;
		case 'n':
			a.states = atoi(optarg);
			break;
		case 'j':
			a.json = 1;
			break;
		case 'S':
			a.seed = strtoull(optarg, NULL, 10);
			break;
		case 'p':
			a.probe_ms = atoi(optarg);
			if (a.probe_ms < 1 || a.probe_ms > 60000) {
				fprintf(stderr, "--probe: 1-60000 ms\n");
				return 2;
			}
			break;
		case 'P':
			if (strcmp(optarg, "call") == 0)
				probe_call_rate = 1;
			else if ((a.probe_rate = atoi(optarg)) != CODEC_RATE
			    && !codec_rate_ok(a.probe_rate)) {
				fprintf(
				    stderr, "--probe-rate: '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(argv[0]);
			return 0;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (a.seconds < 1 || a.seconds > 3600 || a.reps < 1
	    || a.reps > MAX_REPS
	    || (a.rate != 8000 && a.rate != 16000 && a.rate != 24000)
	    || a.def_cx < 0 || a.def_cx > 10 || a.bitrate < 6000
	    || a.states < 1 || a.states > 1000) {
		fprintf(stderr, "bad arguments (see --help)\n");
		return 2;
	}
	if (probe_call_rate)
		a.probe_rate = a.rate;
	ncall  = (size_t)(a.seconds * a.rate);
	nvoice = (size_t)(a.seconds * 24000);
	if (callaudio_speech(&call, ncall, a.rate, a.seed)
	    || callaudio_speech(&voice, nvoice, 24000, 2)
	    || packets_make(&pk, voice, nvoice)) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	if (a.probe_ms) {
		rc = probe_run(&a, call, ncall, &pk) ? 1 : 0;
		goto out;
	}
	pf[np++] = (struct profile) { .name = "default", .opus_rate = 24000 };
	pf[np++] = (struct profile) { .name = "call", .opus_rate = a.rate };
	for (int p = 0; p < np; p++)
		if (run_profile(&pf[p], &a, call, ncall, &pk)) {
			fprintf(stderr, "profile %s failed\n", pf[p].name);
			goto out;
		}
	resample_engine(engine, sizeof(engine));
	if (a.json)
		print_json(&a, pf, np, engine);
	else
		print_table(&a, pf, np, engine);
	rc = 0;
out:
	packets_free(&pk);
	free(call);
	free(voice);
	return rc;
}
