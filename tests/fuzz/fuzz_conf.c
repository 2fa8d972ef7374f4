/* libFuzzer target: the configuration file parser and its validation. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024 || memmem(data, size, "@include", 8))
		return 0; /* includes would read files outside the input */
	char *text = xstrndup((const char *)data, size);
	struct textlist errors = { 0 };
	struct conf *c = conf_parse_string("fuzz.conf", text, &errors);
	if (c && errors.n)
		__builtin_trap(); /* accepted with errors */
	if (!c && !errors.n)
		__builtin_trap(); /* rejected without saying why */
	for (size_t i = 0; i < errors.n; i++)
		if (strncmp(errors.v[i], "fuzz.conf", 9) != 0)
			__builtin_trap(); /* every message names the file */
	conf_free(c);
	textlist_free(&errors);
	free(text);
	return 0;
}
