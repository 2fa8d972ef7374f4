/*
 * libFuzzer target: S3's XML (ListObjectsV2 pages through expat, and the error documents
 * the classifier reads). Whatever the input: a page that is read adds objects that each
 * have a key and a size of at least 0; a page that is refused leaves the listing as it was;
 * the error classifier never reads outside the body.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the body as the HTTP client hands it over: NUL-terminated */
	char *xml = malloc(size + 1);
	memcpy(xml, data, size);
	xml[size] = '\0';
	struct s3_listing l = { 0 };
	char err[256];
	size_t before = 0;
	for (int round = 0; round < 2; round++) { /* a second page appends, or changes nothing */
		int rc = s3_list_parse(xml, size, &l, err, sizeof(err));
		if (rc != 0 && (rc != -EPROTO || l.n != before))
			__builtin_trap();
		for (size_t i = 0; i < l.n; i++)
			if (!l.v[i].key || !*l.v[i].key || l.v[i].size < 0)
				__builtin_trap();
		if (l.truncated && (!l.next_token || !*l.next_token))
			__builtin_trap();
		before = l.n;
	}
	s3_listing_clear(&l);
	free(xml);
	return 0;
}
