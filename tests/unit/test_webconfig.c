/* Unit tests for webconfig.c: the exporter-toolkit web-config.yml format. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/serve/webconfig.c"

static struct webconfig *parse(const char *text, struct textlist *errs)
{
	return webconfig_parse("/etc/x/web.yml", text, strlen(text), errs);
}

static void full_file(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct webconfig *w = parse(
		"tls_server_config:\n"
		"  cert_file: tls/server.crt\n"
		"  key_file: /abs/server.key\n"
		"  client_auth_type: RequireAndVerifyClientCert\n"
		"  client_ca_file: ca.crt\n"
		"  min_version: TLS13\n"
		"  max_version: TLS13\n"
		"  prefer_server_cipher_suites: true\n"
		"http_server_config:\n"
		"  http2: false\n"
		"  headers:\n"
		"    X-Frame-Options: deny\n"
		"    Content-Security-Policy: \"default-src 'none'\"\n"
		"basic_auth_users:\n"
		"  alice: $2y$10$abcdefghijklmnopqrstuuqflPDzB6gcMhKa1rZqKiun2YGL5sa2u\n",
		&errs);
	if (!w)
		fail_msg("rejected: %s", errs.n ? errs.v[0] : "?");
	assert_true(w->tls);
	assert_string_equal(w->cert_file, "/etc/x/tls/server.crt"); /* relative to the file */
	assert_string_equal(w->key_file, "/abs/server.key");
	assert_string_equal(w->client_ca_file, "/etc/x/ca.crt");
	assert_int_equal(w->client_auth, CLIENT_AUTH_REQUIRE_VERIFY);
	assert_int_equal(w->min_version, TLS_V13);
	assert_int_equal(w->nheaders, 2);
	assert_string_equal(w->headers[1].value, "default-src 'none'");
	assert_int_equal(w->nusers, 1);
	assert_string_equal(w->users[0].name, "alice");
	char *prio = webconfig_tls_priorities(w);
	assert_string_equal(prio, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%SERVER_PRECEDENCE");
	free(prio);
	webconfig_free(w);
}

static void empty_and_defaults(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct webconfig *w = parse("", &errs);
	assert_non_null(w);
	assert_false(w->tls);
	assert_int_equal(w->nusers, 0);
	webconfig_free(w);
	w = parse("tls_server_config:\n  cert_file: a\n  key_file: b\n", &errs);
	assert_non_null(w);
	char *prio = webconfig_tls_priorities(w);
	assert_string_equal(prio, "NORMAL:-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.3");
	free(prio);
	webconfig_free(w);
}

static void expect_error(const char *text, const char *want)
{
	struct textlist errs = { 0 };
	struct webconfig *w = parse(text, &errs);
	if (w || errs.n == 0)
		fail_msg("accepted: %s", text);
	bool found = false;
	for (size_t i = 0; i < errs.n; i++)
		found = found || strstr(errs.v[i], want);
	if (!found)
		fail_msg("errors for %s lack \"%s\" (first: %s)", text, want, errs.v[0]);
	assert_non_null(strstr(errs.v[0], "/etc/x/web.yml"));
	textlist_free(&errs);
}

static void errors(void **state)
{
	(void)state;
	expect_error("tls_server_config:\n  cert_file: a\n  key_file: b\n  colour: red\n",
		     "web.yml:4: tls_server_config: unknown key \"colour\"");
	expect_error("bogus: 1\n", "web.yml:1: unknown key \"bogus\"");
	expect_error("tls_server_config:\n  cert_file: a\n", "needs both cert_file and key_file");
	expect_error("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
		     "client_auth_type: unknown value \"Maybe\"");
	expect_error("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
		     "needs client_ca_file");
	expect_error("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n",
		     "min_version: expected TLS10");
	expect_error("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
		     "min_version is above max_version");
	expect_error("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
		     "cipher_suites: not supported");
	expect_error("http_server_config:\n  headers:\n    Server: x\n", "header \"Server\" may not be set");
	expect_error("basic_auth_users:\n  bob: plaintext\n", "basic_auth_users.bob: expected a bcrypt hash");
	expect_error("basic_auth_users: [a, b]\n", "basic_auth_users: expected a mapping");
	expect_error("tls_server_config:\n  cert_file: [\n", "web.yml:");
	expect_error("basic_auth_users:\n  client_auth_type: x\n", "expected a bcrypt hash");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_file),
		cmocka_unit_test(empty_and_defaults),
		cmocka_unit_test(errors),
	};
	return cmocka_run_group_tests_name("webconfig", tests, NULL, NULL);
}
