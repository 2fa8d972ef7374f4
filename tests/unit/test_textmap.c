/* Unit tests for strmap.c: the string map and the borrowed-key pair map. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "../../src/base/textmap.c"

static void textmap_basics(void **state)
{
	(void)state;
	struct textmap *m = textmap_new();
	assert_true(textmap_put(m, "a", (void *)1));
	assert_false(textmap_put(m, "a", (void *)2));
	bool found = true;
	assert_null(textmap_get(m, "b", &found));
	assert_false(found);
	assert_ptr_equal(textmap_get(m, "a", &found), (void *)2);
	assert_true(found);
	textmap_free(m);
}

static void pairmap_keys_and_growth(void **state)
{
	(void)state;
	struct pairmap *m = pairmap_new(0);
	bool fresh;
	*pairmap_slot(m, "ab", "", &fresh) = 1;
	assert_true(fresh);
	*pairmap_slot(m, "a", "b", &fresh) = 2; /* no boundary confusion with ("ab", "") */
	assert_true(fresh);
	assert_int_equal(*pairmap_slot(m, "ab", NULL, &fresh), 1); /* NULL reads as "" */
	assert_false(fresh);
	assert_null(pairmap_find(m, "", "ab"));
	assert_int_equal(*pairmap_find(m, "a", "b"), 2);

	/* many keys: every one found again with its own value after the table grew */
	enum { N = 20000 };
	static char a[N][16], b[N][16];
	for (size_t i = 0; i < N; i++) {
		snprintf(a[i], sizeof(a[i]), "app-%zu", i % 1000);
		snprintf(b[i], sizeof(b[i]), "env-%zu", i / 1000);
		size_t *v = pairmap_slot(m, a[i], b[i], &fresh);
		assert_true(fresh);
		*v = i + 10;
	}
	for (size_t i = 0; i < N; i++) {
		const size_t *v = pairmap_find(m, a[i], b[i]);
		assert_non_null(v);
		assert_int_equal(*v, i + 10);
	}
	assert_null(pairmap_find(m, "app-1", "env-9999"));
	pairmap_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(textmap_basics),
		cmocka_unit_test(pairmap_keys_and_growth),
	};
	return cmocka_run_group_tests_name("strmap", tests, NULL, NULL);
}
