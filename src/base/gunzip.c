/*
 * gunzip.c - see gunzip.h.
 */
#include "base/gunzip.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <zlib.h>

#include "base/util.h"

#define WINDOW (64 * 1024)

struct gunzip {
	z_stream z;
	uint64_t max_out, in, out;
	gunzip_out_fn fn;
	void *arg;
	bool in_member; /* a member has begun and not ended */
	bool any;       /* a member has ended */
	int failed;     /* the error that stopped the stream, 0 while it goes on */
	unsigned char window[WINDOW];
};

struct gunzip *gunzip_new(uint64_t max_out, gunzip_out_fn fn, void *arg)
{
	struct gunzip *g = xcalloc(1, sizeof(*g));
	if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) { /* gzip only */
		free(g);
		return NULL;
	}
	g->max_out = max_out;
	g->fn = fn;
	g->arg = arg;
	return g;
}

void gunzip_free(struct gunzip *g)
{
	if (!g)
		return;
	inflateEnd(&g->z);
	free(g);
}

static int stop(struct gunzip *g, int rc)
{
	g->failed = rc;
	return rc;
}

int gunzip_feed(struct gunzip *g, const void *data, size_t len, char *err, size_t errlen)
{
	if (g->failed) {
		snprintf(err, errlen, "gzip: reading stopped at an earlier error");
		return g->failed;
	}
	const unsigned char *p = data;
	while (len) {
		/* zlib counts in uInt: feed at most 1 GiB at a time */
		uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
		g->z.next_in = (unsigned char *)(uintptr_t)p;
		g->z.avail_in = chunk;
		while (g->z.avail_in) {
			g->z.next_out = g->window;
			g->z.avail_out = WINDOW;
			g->in_member = true;
			int zr = inflate(&g->z, Z_NO_FLUSH);
			size_t got = WINDOW - g->z.avail_out;
			if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && got)) {
				snprintf(err, errlen, "gzip: %s at compressed byte %llu",
					 zr == Z_DATA_ERROR ? (g->z.msg ? g->z.msg : "corrupt data")
					 : zr == Z_MEM_ERROR ? "out of memory" : "cannot inflate",
					 (unsigned long long)(g->in + (chunk - g->z.avail_in)));
				return stop(g, -EPROTO);
			}
			if (g->max_out && g->out + got > g->max_out) {
				snprintf(err, errlen, "gzip: more than %llu bytes once inflated",
					 (unsigned long long)g->max_out);
				return stop(g, -EFBIG);
			}
			g->out += got;
			if (got && g->fn) {
				int rc = g->fn(g->arg, (const char *)g->window, got);
				if (rc)
					return stop(g, rc);
			}
			if (zr == Z_STREAM_END) { /* a member ended; another may follow */
				g->in_member = false;
				g->any = true;
				inflateReset(&g->z);
			}
		}
		g->in += chunk;
		p += chunk;
		len -= chunk;
	}
	return 0;
}

int gunzip_finish(struct gunzip *g, char *err, size_t errlen)
{
	if (g->failed) {
		snprintf(err, errlen, "gzip: reading stopped at an earlier error");
		return g->failed;
	}
	/* what inflate holds back of a member is only released with more input: ask once */
	if (g->in_member) {
		g->z.next_in = NULL;
		g->z.avail_in = 0;
		for (;;) {
			g->z.next_out = g->window;
			g->z.avail_out = WINDOW;
			int zr = inflate(&g->z, Z_FINISH);
			size_t got = WINDOW - g->z.avail_out;
			if (got) {
				if (g->max_out && g->out + got > g->max_out) {
					snprintf(err, errlen, "gzip: more than %llu bytes once inflated",
						 (unsigned long long)g->max_out);
					return stop(g, -EFBIG);
				}
				g->out += got;
				int rc = g->fn ? g->fn(g->arg, (const char *)g->window, got) : 0;
				if (rc)
					return stop(g, rc);
			}
			if (zr == Z_STREAM_END) {
				g->in_member = false;
				g->any = true;
				break;
			}
			if (!got)
				break;
		}
	}
	if (g->in_member || !g->any) {
		snprintf(err, errlen, "gzip: the file ends %s (truncated, %llu bytes read)",
			 g->any || g->in ? "inside a member" : "before any member",
			 (unsigned long long)g->in);
		return stop(g, -EPROTO);
	}
	return 0;
}

uint64_t gunzip_in(const struct gunzip *g)
{
	return g->in;
}

uint64_t gunzip_out(const struct gunzip *g)
{
	return g->out;
}
