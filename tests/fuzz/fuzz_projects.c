/* libFuzzer target: the Projects API page parser (untrusted JSON from the network). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sources/projects_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct project_list l = { 0 };
	bool more = false;
	char err[256];
	if (projects_parse_page((const char *)data, size, &l, &more, err, sizeof(err)) == 0) {
		/* whatever parsed must be usable: every lookup terminates, strings are strings */
		for (size_t i = 0; i < l.n; i++) {
			(void)project_tag(&l.v[i], "Application");
			if (!l.v[i].id || !l.v[i].name || !l.v[i].arn || !l.v[i].status)
				__builtin_trap();
		}
	}
	project_list_free(&l);
	return 0;
}
