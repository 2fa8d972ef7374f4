/*
 * libFuzzer target: the JSON tape parser (every Cost Explorer and Projects
 * response goes through it). Differential: whatever the tape accepts, cJSON
 * must read as the same tree (the tape is the stricter of the two), and every
 * accessor must stay inside the tape.
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
			char *text = malloc(size + 1);
			memcpy(text, data, size);
			text[size] = '\0';
			const char *end = NULL;
			cJSON *c = cJSON_ParseWithOpts(text, &end, true);
			if (!c || !same(&t, 0, c))
				__builtin_trap();
			cJSON_Delete(c);
			free(text);
		}
		char buf[16];
		for (size_t i = 0; i < t.n; i++) {
			(void)jt_str(&t, i, buf, sizeof(buf));
			(void)jt_get(&t, i, "Keys");
			(void)jt_count(&t, i);
		}
	}
	jsontape_free(&t);
	return 0;
}
