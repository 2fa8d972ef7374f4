/* Unit tests for cli.c: flag forms, defaults and errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/config/cli.c"

static int parse(struct cli *c, int argc, const char **argv)
{
	FILE *devnull = fopen("/dev/null", "w");
	int rc = cli_parse(argc, (char **)argv, c, devnull);
	fclose(devnull);
	return rc;
}

static void defaults(void **state)
{
	(void)state;
	struct cli c;
	const char *argv[] = { "x" };
	assert_int_equal(parse(&c, 1, argv), 0);
	assert_string_equal(c.config_file, "/etc/bedrock-cost-exporter/bedrock-cost-exporter.conf");
	assert_string_equal(c.listen_address, ":19880");
	assert_string_equal(c.telemetry_path, "/metrics");
	assert_int_equal(c.log_level, LOG_LEVEL_INFO);
	assert_int_equal(c.log_format, LOG_FORMAT_LOGFMT);
	assert_false(c.once || c.check_config || c.help || c.version);
}

static void both_flag_forms(void **state)
{
	(void)state;
	struct cli c;
	const char *argv[] = { "x", "--config.file=/a.conf", "--web.listen-address", "127.0.0.1:1",
			       "--log.level=debug", "--log.format", "json", "--once",
			       "--web.telemetry-path=/m", "--check-config=false" };
	assert_int_equal(parse(&c, 10, argv), 0);
	assert_string_equal(c.config_file, "/a.conf");
	assert_string_equal(c.listen_address, "127.0.0.1:1");
	assert_string_equal(c.telemetry_path, "/m");
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(c.log_format, LOG_FORMAT_JSON);
	assert_true(c.once);
	assert_false(c.check_config);
}

static void errors(void **state)
{
	(void)state;
	struct cli c;
	const char *unknown[] = { "x", "--nope" };
	assert_int_equal(parse(&c, 2, unknown), -EINVAL);
	const char *missing[] = { "x", "--config.file" };
	assert_int_equal(parse(&c, 2, missing), -EINVAL);
	const char *level[] = { "x", "--log.level=verbose" };
	assert_int_equal(parse(&c, 2, level), -EINVAL);
	const char *positional[] = { "x", "file.conf" };
	assert_int_equal(parse(&c, 2, positional), -EINVAL);
	const char *path[] = { "x", "--web.telemetry-path=metrics" };
	assert_int_equal(parse(&c, 2, path), -EINVAL);
	const char *reserved[] = { "x", "--web.telemetry-path=/-/ready" };
	assert_int_equal(parse(&c, 2, reserved), -EINVAL);
	const char *prefix[] = { "x", "--config=/a" }; /* no prefix matching */
	assert_int_equal(parse(&c, 2, prefix), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(both_flag_forms),
		cmocka_unit_test(errors),
	};
	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
