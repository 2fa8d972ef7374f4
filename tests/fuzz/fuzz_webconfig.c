/* libFuzzer target: the web-config.yml parser (libyaml + validation). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "serve/webconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct textlist errors = { 0 };
	struct webconfig *w = webconfig_parse("/fuzz/web.yml", (const char *)data, size, &errors);
	if (!w && !errors.n)
		__builtin_trap();
	if (w) {
		char *p = webconfig_tls_priorities(w);
		free(p);
	}
	webconfig_free(w);
	textlist_free(&errors);
	return 0;
}
