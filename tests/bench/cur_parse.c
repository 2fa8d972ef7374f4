/*
 * cur_parse - `make bench-cur`: reads an AWS Data Exports (CUR 2.0) data file, gzip-compressed
 * CSV, the way the data_exports source does (base/gunzip.c, then sources/cur_api.c: the CSV
 * reader, the Bedrock filter, the resource_tags and product map columns, and every aggregate
 * table the source keeps) in 256 KiB reads. Prints one JSON object: lines, Bedrock lines, the
 * cost by line_item_line_item_type (from the source's own table), the bytes read and inflated,
 * the cells kept and the process's peak RSS (VmHWM: measured inside, as the RSS a parent
 * process had before exec would otherwise count). Time is measured from outside
 * (tests/bench/cur_bench.py).
 *
 * Usage: cur_parse FILE.csv.gz
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/gunzip.h"
#include "base/textlist.h"
#include "sources/cur_api.h"

struct run {
	struct cur_reader *rd;
	char err[512];
};

static int on_inflated(void *arg, const char *data, size_t len)
{
	struct run *x = arg;
	return cur_reader_feed(x->rd, data, len, x->err, sizeof(x->err));
}

/* VmHWM of this process, KiB (0 when /proc does not say). */
static long vm_hwm_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = 0;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE.csv.gz\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct textlist keys = { 0 }, columns = { 0 }, services = { 0 };
	textlist_push(&keys, strdup("Application"));
	textlist_push(&keys, strdup("Environment"));
	struct cur_opts o = { .tag_keys = &keys, .tag_columns = &columns,
			      .cost_column = "line_item_unblended_cost", .service_search = "Bedrock",
			      .services = &services };
	struct cur_agg agg;
	cur_agg_init(&agg);
	struct run x = { .rd = cur_reader_new(&o, &agg) };
	struct gunzip *g = gunzip_new(0, on_inflated, &x);
	static char chunk[256 * 1024];
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = gunzip_feed(g, chunk, n, x.err, sizeof(x.err));
	if (!rc && ferror(f)) {
		snprintf(x.err, sizeof(x.err), "%s: read error", argv[1]);
		rc = -EIO;
	}
	if (!rc)
		rc = gunzip_finish(g, x.err, sizeof(x.err));
	if (!rc)
		rc = cur_reader_finish(x.rd, x.err, sizeof(x.err));
	fclose(f);
	if (rc) {
		fprintf(stderr, "%s: %s\n", argv[1], x.err);
		return 1;
	}
	/* the cost by line item type, from the (account, tag, tag, type) table */
	char types[16][64];
	double sums[16] = { 0 };
	int nt = 0;
	const struct cur_table *t = &agg.t[CUR_TYPES];
	for (size_t i = 0; i < t->n; i++) {
		char *copy, *fl[4];
		if (cur_key_split(t->v[i].key, &copy, fl, 4) == 4) {
			int k = 0;
			while (k < nt && strcmp(types[k], fl[3]) != 0)
				k++;
			if (k == nt && nt < 16)
				snprintf(types[nt++], sizeof(types[0]), "%s", fl[3]);
			if (k < nt)
				sums[k] += t->v[i].cost;
		}
		free(copy);
	}
	size_t cells = 0;
	for (int i = 0; i < CUR_NTABS; i++)
		cells += agg.t[i].n;
	printf("{\"lines\": %llu, \"bedrock_lines\": %llu, \"compressed_bytes\": %llu, "
	       "\"inflated_bytes\": %llu, \"cells\": %zu, \"vm_hwm_kib\": %ld, "
	       "\"cost_by_line_item_type\": {",
	       (unsigned long long)agg.lines, (unsigned long long)agg.bedrock_lines,
	       (unsigned long long)gunzip_in(g), (unsigned long long)gunzip_out(g), cells,
	       vm_hwm_kib());
	for (int k = 0; k < nt; k++)
		printf("%s\"%s\": %.6f", k ? ", " : "", types[k], sums[k]);
	printf("}}\n");
	gunzip_free(g);
	cur_reader_free(x.rd);
	cur_agg_free(&agg);
	textlist_free(&keys);
	return 0;
}
