/*
 * cli.c - see cli.h.
 */
#include "config/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "config/conf.h"

enum kind { K_STRING, K_BOOL, K_LEVEL, K_FORMAT, K_COUNT };

struct flag {
	const char *name;
	enum kind kind;
	size_t offset;
	const char *def;
	const char *help;
};

#define OFF(f) offsetof(struct cli, f)

static const struct flag flags[] = {
	{ "config.file", K_STRING, OFF(config_file), CLI_DEFAULT_CONFIG,
	  "Configuration file (libconfig syntax)." },
	{ "web.listen-address", K_STRING, OFF(listen_address), ":19880",
	  "Address to listen on, [HOST]:PORT; an empty HOST means every address." },
	{ "web.telemetry-path", K_STRING, OFF(telemetry_path), "/metrics",
	  "Path under which to expose metrics." },
	{ "web.config.file", K_STRING, OFF(web_config_file), "",
	  "exporter-toolkit web configuration (TLS, basic auth, headers); \"\" = plain HTTP." },
	{ "log.level", K_LEVEL, OFF(log_level), "info",
	  "Only log messages with this severity or above: debug, info, warn, error." },
	{ "log.format", K_FORMAT, OFF(log_format), "logfmt", "Log format: logfmt or json." },
	{ "shard", K_COUNT, OFF(shard), "0",
	  "This instance's shard, 0..total-shards-1: it serves the organization's accounts whose "
	  "id hashes to it (kube-state-metrics convention)." },
	{ "total-shards", K_COUNT, OFF(total_shards), "1",
	  "Number of shards the organization's accounts are split between." },
	{ "check-config", K_BOOL, OFF(check_config), NULL,
	  "Validate the configuration file, print errors as file:line: message, exit 0 or 1." },
	{ "once", K_BOOL, OFF(once), NULL,
	  "Refresh every source once, print the exposition to stdout, exit 1 if a source failed." },
	{ "version", K_BOOL, OFF(version), NULL, "Print the version and exit." },
	{ "help", K_BOOL, OFF(help), NULL, "Print this help and exit." },
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static int set(struct cli *out, const struct flag *f, const char *v, FILE *err)
{
	char *base = (char *)out + f->offset;
	switch (f->kind) {
	case K_STRING:
		*(const char **)(void *)base = v;
		return 0;
	case K_LEVEL:
		if (log_parse_level(v, (enum log_level *)(void *)base) == 0)
			return 0;
		break;
	case K_FORMAT:
		if (log_parse_format(v, (enum log_format *)(void *)base) == 0)
			return 0;
		break;
	case K_COUNT: {
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (*v >= '0' && *v <= '9' && !*end && errno == 0 && n <= 100000) {
			*(long *)(void *)base = n;
			return 0;
		}
		break;
	}
	case K_BOOL:
		if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
			*(bool *)(void *)base = strcmp(v, "true") == 0;
			return 0;
		}
		break;
	}
	fprintf(err, "bedrock-cost-exporter: invalid value \"%s\" for --%s\n", v, f->name);
	return -EINVAL;
}

int cli_parse(int argc, char **argv, struct cli *out, FILE *err)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < NFLAGS; i++)
		if (flags[i].def)
			set(out, &flags[i], flags[i].def, err);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0) {
			out->help = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(err, "bedrock-cost-exporter: unexpected argument \"%s\"\n", a);
			return -EINVAL;
		}
		a += 2;
		const char *eq = strchr(a, '=');
		size_t n = eq ? (size_t)(eq - a) : strlen(a);
		const struct flag *f = NULL;
		for (size_t j = 0; j < NFLAGS; j++)
			if (strlen(flags[j].name) == n && strncmp(flags[j].name, a, n) == 0)
				f = &flags[j];
		if (!f) {
			fprintf(err, "bedrock-cost-exporter: unknown flag --%.*s (see --help)\n", (int)n, a);
			return -EINVAL;
		}
		const char *v;
		if (eq) {
			v = eq + 1;
		} else if (f->kind == K_BOOL) {
			v = "true";
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			fprintf(err, "bedrock-cost-exporter: --%s needs a value\n", f->name);
			return -EINVAL;
		}
		if (set(out, f, v, err))
			return -EINVAL;
	}
	if (out->total_shards < 1 || out->shard >= out->total_shards) {
		fprintf(err, "bedrock-cost-exporter: --shard must be 0..--total-shards-1 and "
			     "--total-shards at least 1\n");
		return -EINVAL;
	}
	if (out->telemetry_path[0] != '/' || strcmp(out->telemetry_path, "/") == 0 ||
	    strncmp(out->telemetry_path, "/-/", 3) == 0) {
		fprintf(err, "bedrock-cost-exporter: --web.telemetry-path must start with / and not "
			     "be / or under /-/\n");
		return -EINVAL;
	}
	return 0;
}

void cli_usage(FILE *f)
{
	fputs("usage: bedrock-cost-exporter [flags]\n\n"
	      "Prometheus exporter for Amazon Bedrock projects and spend.\n\nFlags:\n", f);
	for (size_t i = 0; i < NFLAGS; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s", flags[i].name,
			 flags[i].kind == K_BOOL ? "" : "=VALUE");
		fprintf(f, "  %-28s %s", left, flags[i].help);
		if (flags[i].def && *flags[i].def)
			fprintf(f, " (default: %s)", flags[i].def);
		fputc('\n', f);
	}
	fputs("\nConfiguration file keys (group.key  type  default, allowed):\n", f);
	conf_print_keys(f);
	fputs("\nHTTP endpoints: <telemetry-path> (metrics), / (status page), /-/healthy, /-/ready\n"
	      "\nSignals: SIGHUP reloads the configuration (a bad file is rejected and the old one\n"
	      "kept); SIGTERM and SIGINT stop the exporter; SIGUSR1 and SIGUSR2 are ignored.\n"
	      "\nExit status: 0 success; 1 configuration, start-up or (with --once) refresh\n"
	      "failure; 2 invalid command line.\n", f);
}
