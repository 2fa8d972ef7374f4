/*
 * landing.c - see landing.h.
 */
#include "serve/landing.h"

#include <stdio.h>
#include <time.h>

#include "base/util.h"
#include "base/version.h"

static void put_html(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '&': buf_puts(b, "&amp;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		case '\'': buf_puts(b, "&#39;"); break;
		default: buf_putc(b, *s);
		}
	}
}

static void put_time(struct buf *b, double t)
{
	if (t <= 0) {
		buf_puts(b, "never");
		return;
	}
	char s[40];
	time_t secs = (time_t)t;
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S UTC", &tm);
	buf_puts(b, s);
}

static void put_source(struct buf *b, const struct landing_source *s)
{
	buf_puts(b, "<tr><td>");
	put_html(b, s->name);
	buf_puts(b, "</td><td>");
	put_html(b, s->state);
	buf_puts(b, "</td><td>");
	put_time(b, s->last_success);
	buf_puts(b, "</td><td>");
	put_html(b, s->last_error ? s->last_error : "");
	buf_puts(b, "</td></tr>\n");
}

char *landing_render(const char *telemetry_path, const struct landing_source *sources, size_t n,
		     size_t *len)
{
	struct buf b;
	buf_init(&b, 1024 * 1024);
	buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		     "<title>Bedrock Cost Exporter</title></head>\n<body>\n"
		     "<h1>Bedrock Cost Exporter</h1>\n<p>Version " BCE_VERSION
		     " (revision " BCE_REVISION ")</p>\n<p><a href=\"");
	put_html(&b, telemetry_path);
	buf_puts(&b, "\">Metrics</a> &middot; <a href=\"/-/healthy\">Health</a> &middot; "
		     "<a href=\"/-/ready\">Readiness</a></p>\n<h2>Sources</h2>\n"
		     "<table border=\"1\" cellpadding=\"4\">\n<tr><th>Source</th><th>State</th>"
		     "<th>Last success</th><th>Last error</th></tr>\n");
	for (size_t i = 0; i < n; i++)
		put_source(&b, &sources[i]);
	buf_puts(&b, "</table>\n</body></html>\n");
	return buf_steal(&b, len);
}
