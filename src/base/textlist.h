/*
 * textlist.h - a list of owned strings (regions, tag keys, services, error
 * messages). Not thread-safe; one owner at a time.
 */
#ifndef BCE_TEXTLIST_H
#define BCE_TEXTLIST_H

#include <stdbool.h>
#include <stddef.h>

struct textlist {
	char **v;
	size_t n;
};

/* Appends @s, taking ownership of it. */
void textlist_push(struct textlist *l, char *s);
/* Frees every string and the array; @l becomes empty. */
void textlist_free(struct textlist *l);
/* Same strings in the same order. */
bool textlist_equal(const struct textlist *a, const struct textlist *b);
/* Index of @s in @l, or -1. */
long textlist_find(const struct textlist *l, const char *s);

#endif
