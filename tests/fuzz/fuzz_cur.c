/*
 * libFuzzer target: CUR 2.0 line items (sources/cur_api.c: the CSV reader, the header's
 * columns, map cells, dates and numbers, the Bedrock filter, the tables). Whatever the input:
 * read whole and read in two pieces (split where the first byte says) give the same result
 * code and the same tables; a refusal says why; every cell's key splits into its fields.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/textlist.h"
#include "base/util.h"
#include "sources/cur_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_all(const struct cur_opts *o, const char *text, size_t n, size_t split,
		    struct cur_agg *agg, char *err, size_t errlen)
{
	cur_agg_init(agg);
	struct cur_reader *r = cur_reader_new(o, agg);
	int rc = cur_reader_feed(r, text, split, err, errlen);
	if (!rc)
		rc = cur_reader_feed(r, text + split, n - split, err, errlen);
	if (!rc)
		rc = cur_reader_finish(r, err, errlen);
	cur_reader_free(r);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = size > 1 ? data[0] % size : 0;
	const char *text = (const char *)data + 1;
	size_t n = size - 1;
	if (split > n)
		split = n;
	static struct textlist keys, cols, services;
	if (!keys.n) {
		textlist_push(&keys, xstrdup("Application"));
		textlist_push(&keys, xstrdup("Environment"));
	}
	struct cur_opts o = { .tag_keys = &keys, .tag_columns = &cols,
			      .cost_column = "line_item_unblended_cost", .service_search = "Bedrock",
			      .services = &services };
	struct cur_agg a, b;
	char ea[512] = "", eb[512] = "";
	int ra = read_all(&o, text, n, n, &a, ea, sizeof(ea));
	int rb = read_all(&o, text, n, split, &b, eb, sizeof(eb));
	if (ra != rb || (ra && (!ea[0] || !eb[0])))
		__builtin_trap();
	if (!ra) {
		for (int t = 0; t < CUR_NTABS; t++) {
			if (a.t[t].n != b.t[t].n)
				__builtin_trap();
			for (size_t i = 0; i < a.t[t].n; i++) {
				if (strcmp(a.t[t].v[i].key, b.t[t].v[i].key) != 0)
					__builtin_trap();
				char *copy, *f[8];
				if (cur_key_split(a.t[t].v[i].key, &copy, f, 8) < 2)
					__builtin_trap();
				free(copy);
			}
		}
		if (a.bedrock_lines > a.lines || a.lines != b.lines)
			__builtin_trap();
	}
	cur_agg_free(&a);
	cur_agg_free(&b);
	return 0;
}
