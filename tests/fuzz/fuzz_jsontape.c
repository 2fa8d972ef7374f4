/*
 * libFuzzer target: the JSON tape parser (every Cost Explorer and Projects
 * response goes through it). Differential: whatever the tape accepts, cJSON
 * must read as the same tree once the tape's string rule is applied to it
 * (jsontape_cjson.h; the tape is the stricter of the two, except that it
 * accepts lone surrogate escapes), every string copied out must be valid
 * UTF-8 at most 3 times its span, and every accessor must stay inside the tape.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/jsontape.h"
#include "../unit/jsontape_cjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsontape t;
	if (jsontape_parse(&t, (const char *)data, size) == 0) {
		/* cJSON reads numbers of at most 63 characters and stops at a NUL */
		bool comparable = memchr(data, '\0', size) == NULL;
		for (size_t i = 0; i < t.n && comparable; i++)
			comparable = !(t.t[i].type == JT_NUMBER && t.t[i].len > 63);
		if (comparable) {
			char *text = cjson_text((const char *)data, size);
			const char *end = NULL;
			cJSON *c = cJSON_ParseWithOpts(text, &end, true);
			if (!c || !same(&t, 0, c))
				__builtin_trap();
			cJSON_Delete(c);
			free(text);
		}
		char buf[16];
		for (size_t i = 0; i < t.n; i++) {
			long n = jt_str(&t, i, buf, sizeof(buf));
			char *s = jt_strdup(&t, i);
			if (s) {
				size_t m = strlen(s);
				if (!ref_utf8_valid(s, m) || m > 3 * (size_t)t.t[i].len ||
				    n != (m < sizeof(buf) ? (long)m : -1) || (n >= 0 && strcmp(buf, s) != 0) ||
				    !jt_str_eq(&t, i, s))
					__builtin_trap();
				free(s);
			} else if (n != -1) {
				__builtin_trap();
			}
			(void)jt_get(&t, i, "Keys");
			(void)jt_count(&t, i);
		}
	}
	jsontape_free(&t);
	return 0;
}
