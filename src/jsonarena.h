/*
 * jsonarena.h - cJSON allocations from a bump arena while one large document
 * is parsed and read.
 *
 * A Cost Explorer page is megabytes of JSON: hundreds of thousands of small
 * cJSON nodes and strings. With malloc, building and freeing them costs more
 * than parsing them. Between jsonarena_begin() and jsonarena_end() every cJSON
 * allocation made by the calling thread comes from a bump arena and every
 * cJSON free is a no-op; jsonarena_end() releases it all at once. Other
 * threads (and the calling thread outside the pair) use malloc as usual.
 *
 * Rules for callers: a tree parsed inside the pair is dead after
 * jsonarena_end() (do not cJSON_Delete it; copy out what you keep, with your
 * own allocator); a tree made before jsonarena_begin() must not be freed
 * inside the pair. Pairs do not nest. Any thread; the arena is per thread.
 * Under AddressSanitizer the arena poisons what it has not handed out, so
 * reads past a node still fault.
 */
#ifndef BCE_JSONARENA_H
#define BCE_JSONARENA_H

void jsonarena_begin(void);
void jsonarena_end(void);

#endif
