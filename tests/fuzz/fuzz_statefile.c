/* libFuzzer target: the state file, read back by every source of the table (a file on disk
 * can be truncated, edited by hand or written by another version). Whatever one source's
 * restore() accepts must be a state the source can save again. */
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>

#include "base/jsontape.h"
#include "base/jsonw.h"
#include "config/conf.h"
#include "sources/source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf *c;
	if (!c)
		c = conf_defaults();
	struct jsontape t;
	if (jsontape_parse(&t, (const char *)data, size) == 0 && jt_is(&t, 0, JT_OBJECT)) {
		for (const struct source_def *const *d = source_table; *d; d++) {
			if (!(*d)->restore)
				continue;
			struct source_restored got = { 0 };
			char err[256];
			void *priv = (*d)->restore(&t, 0, c, 1795651200, &got, err, sizeof(err));
			if (!priv)
				continue;
			struct jsonw w;
			jsonw_init(&w, (size_t)64 << 20);
			jsonw_object_begin(&w);
			if ((*d)->save)
				(*d)->save(priv, &w);
			jsonw_object_end(&w);
			if (w.err && w.err != -EFBIG) /* restored numbers are finite: never -EDOM */
				__builtin_trap();
			jsonw_free(&w);
			(*d)->destroy(priv);
		}
	}
	jsontape_free(&t);
	return 0;
}
