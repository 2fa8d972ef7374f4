/* Unit tests for server.c's pure parts: listen addresses and Accept-Encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/server.c"

static void listen_addresses(void **state)
{
	(void)state;
	char host[64];
	unsigned short port;
	assert_int_equal(server_parse_listen(":19880", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 19880);
	assert_int_equal(server_parse_listen("127.0.0.1:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 0);
	assert_int_equal(server_parse_listen("[::1]:9100", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9100);
	assert_int_equal(server_parse_listen("localhost:80", host, sizeof(host), &port), 0);
	assert_string_equal(host, "localhost");
	const char *bad[] = { "19880", ":", "host:", ":65536", ":-1", ":12ab", "::1:80", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (server_parse_listen(bad[i], host, sizeof(host), &port) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void accept_encoding(void **state)
{
	(void)state;
	assert_true(server_accepts_gzip("gzip"));
	assert_true(server_accepts_gzip("GZIP"));
	assert_true(server_accepts_gzip("deflate, gzip;q=0.5"));
	assert_true(server_accepts_gzip("gzip, deflate, br"));
	assert_true(server_accepts_gzip("*"));
	assert_true(server_accepts_gzip("br;q=1.0, *;q=0.1"));
	assert_false(server_accepts_gzip(NULL));
	assert_false(server_accepts_gzip(""));
	assert_false(server_accepts_gzip("identity"));
	assert_false(server_accepts_gzip("gzip;q=0"));
	assert_false(server_accepts_gzip("gzip; q=0.0, *"));   /* explicit refusal wins over * */
	assert_false(server_accepts_gzip("x-gzip2"));
	assert_false(server_accepts_gzip("*;q=0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listen_addresses),
		cmocka_unit_test(accept_encoding),
	};
	return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
