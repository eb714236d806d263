/*
 * persona.c - personas from an INI file, chosen and rendered per call
 * (see persona.h).
 */
#include "persona.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "mode.h"
#include "ppurl.h"

#define NAME_MAX_LEN 64
#define DIGITS_MAX 32
#define SUFFIX_DIGITS 10 /* a national number, without its prefixes */
#define DEFAULT_NAME "default"

struct entry {
	struct persona p;
	char          *name, *voice, *text, *source;
	char         **numbers; /* digits only */
	size_t         nnumbers;
	enum mode      mode; /* MODE_NONE: not set */
	bool           has_voice, has_text, has_numbers, has_mode;
};

struct personas {
	struct entry *e;
	size_t        n;
};

/* The parse in progress: the reader's view of the file, for line numbers
 * and continuation lines, and the first error. */
struct parse {
	struct personas *ps;
	const char      *path;
	const char      *buf;
	size_t           len, off;
	int              line; /* of the line last handed to inih */
	bool             indented; /* that line was a continuation */
	int              overlong; /* first line too long, 0 if none */
	char            *err;
	size_t           errlen;
	bool             failed;
	char             last_section[NAME_MAX_LEN + 1];
	char             last_key[16];
};

void
persona_lib_init(void)
{
	/* inih keeps these as process-wide settings: room for a long
	 * prompt on one line, and ';' in prose is not a comment. */
	ini_max_line              = PERSONA_LINE_MAX + 3;
	ini_allow_inline_comments = false;
	ini_allow_multiline       = true;
}

static void
perr(struct parse *x, const char *fmt, const char *a, const char *b)
{
	char msg[256];

	if (x->failed)
		return;
	x->failed = true;
	snprintf(msg, sizeof(msg), fmt, a ? a : "", b ? b : "");
	snprintf(x->err, x->errlen, "EXOPLEX_PERSONAS %s line %d: %s", x->path,
	    x->line, msg);
}

/* fgets for inih over the file in memory, noting what each line was. */
static char *
reader(char *str, int num, void *stream)
{
	struct parse *x = stream;
	const char   *s, *nl;
	size_t        n, room;

	if (x->off >= x->len || num < 3)
		return NULL;
	s  = x->buf + x->off;
	nl = memchr(s, '\n', x->len - x->off);
	n  = nl ? (size_t)(nl - s) : x->len - x->off;
	x->off += n + (nl != NULL);
	x->line++;
	x->indented = false;
	if (n && (s[0] == ' ' || s[0] == '\t'))
		for (size_t i = 1; i < n && !x->indented; i++)
			x->indented = !isspace((unsigned char)s[i]);
	room = (size_t)num - 2;
	if (n > room) {
		if (!x->overlong)
			x->overlong = x->line;
		n = room;
	}
	memcpy(str, s, n);
	str[n]     = '\n';
	str[n + 1] = '\0';
	return str;
}

static bool
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	return true;
}

static struct entry *
entry_get(struct personas *ps, const char *name, bool create)
{
	struct entry *e;

	for (size_t i = 0; i < ps->n; i++)
		if (!strcasecmp(ps->e[i].name, name))
			return &ps->e[i];
	if (!create)
		return NULL;
	e = realloc(ps->e, (ps->n + 1) * sizeof(*e));
	if (!e)
		return NULL;
	ps->e = e;
	e     = &ps->e[ps->n];
	memset(e, 0, sizeof(*e));
	if (!(e->name = strdup(name)))
		return NULL;
	ps->n++;
	return e;
}

/* Appends v to *dst, with sep between when both are non-empty. */
static int
append(char **dst, const char *v, const char *sep)
{
	size_t a = *dst ? strlen(*dst) : 0, b = strlen(v), c = strlen(sep);
	char  *p;

	if (!b)
		return 0;
	if (!(p = realloc(*dst, a + c + b + 1)))
		return ENOMEM;
	if (a) {
		memcpy(p + a, sep, c);
		a += c;
	}
	memcpy(p + a, v, b + 1);
	*dst = p;
	return 0;
}

static size_t
digits_of(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; s && *s; s++)
		if (isdigit((unsigned char)*s)) {
			if (n + 1 >= len)
				return 0; /* no number is that long */
			out[n++] = *s;
		}
	out[n] = '\0';
	return n;
}

static bool
digits_match(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (!la || !lb)
		return false;
	if (la == lb && !strcmp(a, b))
		return true;
	return la >= SUFFIX_DIGITS && lb >= SUFFIX_DIGITS
	    && !strcmp(a + la - SUFFIX_DIGITS, b + lb - SUFFIX_DIGITS);
}

bool
persona_number_match(const char *a, const char *b)
{
	char da[DIGITS_MAX], db[DIGITS_MAX];

	return digits_of(a, da, sizeof(da)) && digits_of(b, db, sizeof(db))
	    && digits_match(da, db);
}

static int
add_numbers(struct parse *x, struct entry *e, const char *v)
{
	char one[DIGITS_MAX];

	while (*v) {
		size_t n = strcspn(v, ",");
		char   item[128];
		char **p;

		snprintf(item, sizeof(item), "%.*s",
		    (int)(n < sizeof(item) ? n : sizeof(item) - 1), v);
		v += n + (v[n] == ',');
		if (!*item || strspn(item, " \t") == strlen(item))
			continue;
		if (digits_of(item, one, sizeof(one)) < 3) {
			perr(x, "'%s' is not a phone number (persona %s)",
			    item, e->name);
			return EINVAL;
		}
		p = realloc(e->numbers, (e->nnumbers + 1) * sizeof(*p));
		if (!p)
			return ENOMEM;
		e->numbers = p;
		if (!(p[e->nnumbers] = strdup(one)))
			return ENOMEM;
		e->nnumbers++;
	}
	return 0;
}

static const char *
key_of(const char *name)
{
	if (!strcasecmp(name, "voice") || !strcasecmp(name, "voice_prompt"))
		return "voice";
	if (!strcasecmp(name, "text") || !strcasecmp(name, "text_prompt"))
		return "text";
	if (!strcasecmp(name, "numbers") || !strcasecmp(name, "number"))
		return "numbers";
	if (!strcasecmp(name, "mode"))
		return "mode";
	return NULL;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *x = user;
	struct entry *e;
	const char   *key = key_of(name);
	bool          cont;
	char          src[300];

	if (x->failed)
		return 1;
	if (!*section) {
		perr(x, "'%s' is outside any [persona] section", name, NULL);
		return 0;
	}
	if (!valid_name(section)) {
		perr(x,
		    "[%s] is not a persona name (letters, digits, '_', '.', "
		    "'-'; at most 64)",
		    section, NULL);
		return 0;
	}
	if (!key) {
		perr(x,
		    "unknown setting '%s' (persona %s takes voice, text, "
		    "numbers and mode)",
		    name, section);
		return 0;
	}
	if (!(e = entry_get(x->ps, section, true)))
		return 0;
	if (!e->source) {
		snprintf(src, sizeof(src), "%s:%d", x->path, x->line);
		if (!(e->source = strdup(src)))
			return 0;
	}
	/* An indented line right after a setting continues it. */
	cont = x->indented && !strcmp(x->last_key, key)
	    && !strcasecmp(x->last_section, section);
	snprintf(x->last_section, sizeof(x->last_section), "%s", section);
	snprintf(x->last_key, sizeof(x->last_key), "%s", key);

	if (!strcmp(key, "voice")) {
		if (cont) {
			perr(x, "the voice of persona %s must be on one line",
			    section, NULL);
			return 0;
		}
		if (e->has_voice)
			goto twice;
		e->has_voice = true;
		free(e->voice);
		return (e->voice = strdup(value)) != NULL;
	}
	if (!strcmp(key, "text")) {
		if (!cont && e->has_text)
			goto twice;
		e->has_text = true;
		return append(&e->text, value, " ") == 0;
	}
	if (!strcmp(key, "mode")) {
		if (cont || e->has_mode) {
			perr(x,
			    "the mode of persona %s is set twice or "
			    "continued",
			    section, NULL);
			return 0;
		}
		e->has_mode = true;
		if ((e->mode = mode_parse(value)) == MODE_NONE) {
			perr(x,
			    "the mode of persona %s must be agent or "
			    "transcribe, not '%s'",
			    section, value);
			return 0;
		}
		return 1;
	}
	if (!cont && e->has_numbers)
		goto twice;
	e->has_numbers = true;
	return add_numbers(x, e, value) == 0;
twice:
	perr(x, "'%s' is set twice for persona %s", key, section);
	return 0;
}

static int
read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	FILE       *f = fopen(path, "rb");
	struct stat st;
	int         rc = 0;

	if (!f) {
		snprintf(err, errlen, "EXOPLEX_PERSONAS: cannot read '%s': %s",
		    path, strerror(errno));
		return EINVAL;
	}
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)
	    || st.st_size > PERSONA_FILE_MAX) {
		snprintf(err, errlen,
		    "EXOPLEX_PERSONAS: '%s' is not a file of at most %d bytes",
		    path, PERSONA_FILE_MAX);
		rc = EINVAL;
		goto out;
	}
	if (!(*buf = malloc((size_t)st.st_size + 1))) {
		rc = ENOMEM;
		goto out;
	}
	*len         = fread(*buf, 1, (size_t)st.st_size, f);
	(*buf)[*len] = '\0';
	if (ferror(f)) {
		snprintf(
		    err, errlen, "EXOPLEX_PERSONAS: cannot read '%s'", path);
		rc = EINVAL;
	}
out:
	fclose(f);
	return rc;
}

/* After parsing: defaults filled in, each persona complete, numbers
 * unique. The default persona goes first. */
static int
finish(struct personas *ps, const char *voice, const char *text,
    const char *path, char *err, size_t errlen)
{
	struct entry *d = entry_get(ps, DEFAULT_NAME, false), tmp;

	if (!d) {
		if (!(d = entry_get(ps, DEFAULT_NAME, true)))
			return ENOMEM;
		if (!(d->source
		        = strdup("EXOPLEX_VOICE_PROMPT/EXOPLEX_TEXT_PROMPT")))
			return ENOMEM;
	}
	if (!d->voice && voice && !(d->voice = strdup(voice)))
		return ENOMEM;
	if (!d->text && text && !(d->text = strdup(text)))
		return ENOMEM;
	/* First, the others keeping their order in the file. */
	tmp = *d;
	memmove(ps->e + 1, ps->e, (size_t)(d - ps->e) * sizeof(*d));
	ps->e[0] = tmp;
	d        = &ps->e[0];

	for (size_t i = 0; i < ps->n; i++) {
		struct entry *e = &ps->e[i];
		if (!e->voice && d->voice && !(e->voice = strdup(d->voice)))
			return ENOMEM;
		/* A transcribe-only persona needs no prompt; should a call
		 * still ask for an agent, it gets the default's. */
		if (e->mode == MODE_TRANSCRIBE && (!e->text || !*e->text)
		    && d->text && *d->text) {
			free(e->text);
			if (!(e->text = strdup(d->text)))
				return ENOMEM;
		}
		if (!e->voice || !*e->voice) {
			snprintf(err, errlen,
			    "persona %s (%s): no voice (set voice = NATF2.pt "
			    "or EXOPLEX_VOICE_PROMPT)",
			    e->name, e->source);
			return EINVAL;
		}
		if (!e->text || !*e->text) {
			snprintf(err, errlen,
			    "persona %s (%s): no text prompt (text = ...)",
			    e->name, e->source);
			return EINVAL;
		}
		for (size_t k = 0; k < e->nnumbers; k++)
			for (size_t j = 0; j <= i; j++)
				for (size_t m = 0; m < ps->e[j].nnumbers;
				     m++) {
					if (j == i && m >= k)
						break;
					if (!digits_match(e->numbers[k],
					        ps->e[j].numbers[m]))
						continue;
					snprintf(err, errlen,
					    "EXOPLEX_PERSONAS %s: number %s "
					    "is answered by both persona %s "
					    "and persona %s",
					    path ? path : "", e->numbers[k],
					    ps->e[j].name, e->name);
					return EINVAL;
				}
		e->p.name   = e->name;
		e->p.voice  = e->voice;
		e->p.text   = e->text;
		e->p.source = e->source;
		e->p.mode   = e->mode == MODE_NONE ? NULL : mode_name(e->mode);
		e->p.templated = false;
		for (const char *t = e->text; (t = strchr(t, '{')); t++) {
			if (t[1] == '{') {
				t++;
				continue;
			}
			e->p.templated = true;
			break;
		}
	}
	return 0;
}

int
personas_load(struct personas **out, const char *path, const char *voice,
    const char *text, char *err, size_t errlen)
{
	struct personas *ps  = calloc(1, sizeof(*ps));
	char            *buf = NULL;
	size_t           len = 0;
	int              rc  = 0, line;

	err[0] = '\0';
	if (!ps)
		return ENOMEM;
	if (path && *path) {
		struct parse x
		    = { .ps = ps, .path = path, .err = err, .errlen = errlen };
		if ((rc = read_file(path, &buf, &len, err, errlen)))
			goto out;
		x.buf = buf;
		x.len = len;
		line  = ini_parse_stream(reader, &x, handler, &x);
		if (x.overlong) {
			snprintf(err, errlen,
			    "EXOPLEX_PERSONAS %s line %d: longer than %d "
			    "bytes (continue a long text on indented lines)",
			    path, x.overlong, PERSONA_LINE_MAX);
			rc = EINVAL;
			goto out;
		}
		if (x.failed) {
			rc = EINVAL;
			goto out;
		}
		if (line) {
			snprintf(err, errlen,
			    "EXOPLEX_PERSONAS %s line %d: not a [persona], a "
			    "name = value, an indented continuation or a "
			    "comment",
			    path, line);
			rc = line < 0 ? ENOMEM : EINVAL;
			goto out;
		}
	}
	rc = finish(ps, voice, text, path, err, errlen);
out:
	free(buf);
	if (rc) {
		if (rc == ENOMEM && !err[0])
			snprintf(
			    err, errlen, "out of memory reading the personas");
		personas_free(ps);
		return rc;
	}
	*out = ps;
	return 0;
}

void
personas_free(struct personas *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++) {
		struct entry *e = &ps->e[i];
		for (size_t k = 0; k < e->nnumbers; k++)
			free(e->numbers[k]);
		free(e->numbers);
		free(e->name);
		free(e->voice);
		free(e->text);
		free(e->source);
	}
	free(ps->e);
	free(ps);
}

static bool
blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

int
personas_check(const struct personas *ps, const struct ppurl *servers,
    size_t n, char *err, size_t errlen)
{
	char *text = malloc(PPURL_URL_MAX + 1);
	char *tgt  = malloc(PPURL_URL_MAX + 1);
	char  why[400];
	int   rc = 0;

	if (!text || !tgt) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ps->n && !rc; i++) {
		const struct persona *p = &ps->e[i].p;
		if (persona_render(p, NULL, text, PPURL_URL_MAX + 1)
		    || blank(text)) {
			snprintf(err, errlen,
			    "persona %s (%s): the text prompt is %s%s",
			    p->name, p->source,
			    blank(text) ? "empty" : "too long",
			    p->templated ? " without its placeholders" : "");
			rc = EINVAL;
			break;
		}
		for (size_t s = 0; s < n; s++) {
			rc = ppurl_target(&servers[s], p->voice, text, 0, tgt,
			    PPURL_URL_MAX + 1, why, sizeof(why));
			if (rc) {
				snprintf(err, errlen, "persona %s (%s): %s",
				    p->name, p->source, why);
				break;
			}
		}
	}
out:
	free(text);
	free(tgt);
	return rc;
}

size_t
personas_count(const struct personas *ps)
{
	return ps->n;
}

const struct persona *
personas_at(const struct personas *ps, size_t i)
{
	return i < ps->n ? &ps->e[i].p : NULL;
}

const struct persona *
personas_default(const struct personas *ps)
{
	return &ps->e[0].p;
}

const struct persona *
personas_find(const struct personas *ps, const char *name)
{
	const struct entry *e;

	if (!name || !*name)
		return NULL;
	e = entry_get((struct personas *)ps, name, false);
	return e ? &e->p : NULL;
}

const struct persona *
personas_for_number(const struct personas *ps, const char *number)
{
	char d[DIGITS_MAX];

	if (!digits_of(number, d, sizeof(d)))
		return NULL;
	for (size_t i = 0; i < ps->n; i++)
		for (size_t k = 0; k < ps->e[i].nnumbers; k++)
			if (digits_match(d, ps->e[i].numbers[k]))
				return &ps->e[i].p;
	return NULL;
}

const struct persona *
persona_choose(const struct personas *ps, const char *asked, const char *to,
    enum persona_why *why, bool *unknown)
{
	const struct persona *p;

	*unknown = false;
	if (asked && *asked) {
		if ((p = personas_find(ps, asked))) {
			*why = PERSONA_BY_NAME;
			return p;
		}
		*unknown = true;
	}
	if ((p = personas_for_number(ps, to))) {
		*why = PERSONA_BY_NUMBER;
		return p;
	}
	*why = PERSONA_BY_DEFAULT;
	return personas_default(ps);
}

static const char *
lookup(const struct persona_vars *v, const char *name, size_t n)
{
	if (!v)
		return NULL;
	if (n == 4 && !memcmp(name, "from", 4))
		return v->from;
	if (n == 2 && !memcmp(name, "to", 2))
		return v->to;
	if (n == 5 && !memcmp(name, "token", 5))
		return NULL; /* a credential: never into a prompt */
	for (size_t i = 0; i < v->n; i++)
		if (v->keys && v->keys[i] && strlen(v->keys[i]) == n
		    && !memcmp(v->keys[i], name, n))
			return v->values ? v->values[i] : NULL;
	return NULL;
}

int
persona_render(const struct persona *p, const struct persona_vars *v,
    char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return E2BIG;
#define PUT(c)                                                                \
	do {                                                                  \
		if (o + 1 >= len)                                             \
			goto full;                                            \
		buf[o++] = (c);                                               \
	} while (0)
	for (const char *t = p->text; *t; t++) {
		size_t      n;
		const char *val;

		if (*t != '{') {
			PUT(*t);
			continue;
		}
		if (t[1] == '{') {
			PUT('{');
			t++;
			continue;
		}
		n = strspn(t + 1,
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789_.-");
		if (!n || n > NAME_MAX_LEN || t[1 + n] != '}') {
			PUT('{'); /* not a placeholder: literal text */
			continue;
		}
		val = lookup(v, t + 1, n);
		for (size_t i = 0; val && val[i] && i < PERSONA_VALUE_MAX;
		     i++) {
			unsigned char c = (unsigned char)val[i];
			PUT(c < 0x20 || c == 0x7f ? ' ' : (char)c);
		}
		t += n + 1;
	}
#undef PUT
	buf[o] = '\0';
	return 0;
full:
	buf[o] = '\0';
	return E2BIG;
}
