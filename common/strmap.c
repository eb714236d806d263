/*
 * strmap.c - open addressing with linear probing and tombstones.
 * Call tables are small (hundreds of entries) and looked up per frame, so
 * a flat array beats chained nodes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct slot {
	char *key; /* NULL: empty; TOMB: deleted */
	void *val;
	uint32_t hash;
};

struct strmap {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t count;
	size_t used; /* count + tombstones */
};

static char tomb_;
#define TOMB (&tomb_)

static uint32_t
hash_str(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	while (*s)
		h = (h ^ (uint8_t) *s++) * 16777619u;
	return h;
}

int
strmap_alloc(struct strmap **out)
{
	struct strmap *m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	m->cap = 64;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return ENOMEM;
	}
	*out = m;
	return 0;
}

void
strmap_free(struct strmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMB)
			free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static struct slot *
find(const struct strmap *m, const char *key, uint32_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != TOMB && s->hash == h && !strcmp(s->key, key))
			return s;
	}
}

static int
grow(struct strmap *m)
{
	size_t ncap = m->count * 4 > m->cap ? m->cap * 2 : m->cap;
	struct slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->slots[i];
		if (!s->key || s->key == TOMB)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	m->used = m->count;
	return 0;
}

int
strmap_put(struct strmap *m, const char *key, void *val)
{
	uint32_t h = hash_str(key);
	struct slot *s = find(m, key, h);
	if (s) {
		s->val = val;
		return 0;
	}
	if ((m->used + 1) * 4 > m->cap * 3) {
		int err = grow(m);
		if (err)
			return err;
	}
	char *k = strdup(key);
	if (!k)
		return ENOMEM;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		s = &m->slots[i];
		if (!s->key || s->key == TOMB) {
			if (!s->key)
				m->used++;
			s->key = k;
			s->val = val;
			s->hash = h;
			m->count++;
			return 0;
		}
	}
}

void *
strmap_get(const struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, hash_str(key));
	return s ? s->val : NULL;
}

void *
strmap_del(struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, hash_str(key));
	if (!s)
		return NULL;
	void *v = s->val;
	free(s->key);
	s->key = TOMB;
	s->val = NULL;
	m->count--;
	return v;
}

size_t
strmap_count(const struct strmap *m)
{
	return m->count;
}

size_t
strmap_del_if(struct strmap *m,
    bool (*fn)(const char *key, void *val, void *arg), void *arg)
{
	size_t n = 0;

	/* Tombstones keep every other entry's probe chain whole, so the
	 * walk may go on past a removal. */
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->slots[i];
		if (s->key && s->key != TOMB && fn(s->key, s->val, arg)) {
			free(s->key);
			s->key = TOMB;
			s->val = NULL;
			m->count--;
			n++;
		}
	}
	return n;
}

void
strmap_each(const struct strmap *m,
    void (*fn)(const char *key, void *val, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->slots[i];
		if (s->key && s->key != TOMB)
			fn(s->key, s->val, arg);
	}
}
