/*
 * strmap.h - a hash map from NUL-terminated strings to pointers.
 *
 * Used for call tables keyed by stream_sid. Keys are copied; values are
 * the caller's (the map never frees them). Not thread-safe.
 */
#ifndef EXO_STRMAP_H
#define EXO_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap;

int    strmap_alloc(struct strmap **out);
void   strmap_free(struct strmap *m);
/* Inserts or replaces. Returns 0 or ENOMEM. */
int    strmap_put(struct strmap *m, const char *key, void *val);
void  *strmap_get(const struct strmap *m, const char *key);
/* Removes key and returns its value (NULL if absent). */
void  *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* Removes every entry for which fn returns true; fn may free the value
 * (the key is the map's, freed after fn returns) but must not modify the
 * map. Returns how many were removed. */
size_t strmap_del_if(struct strmap *m,
    bool (*fn)(const char *key, void *val, void *arg), void *arg);
/* Calls fn for every entry; fn must not modify the map. */
void   strmap_each(const struct strmap *m,
      void (*fn)(const char *key, void *val, void *arg), void *arg);

#endif
