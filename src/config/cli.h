/*
 * cli.h - command-line flags, Prometheus style (--name=value or --name value).
 * One table (cli.c: flags[]) drives parsing and --help.
 */
#ifndef BCE_CLI_H
#define BCE_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "base/log.h"

#ifndef BCE_SYSCONFDIR
#define BCE_SYSCONFDIR "/etc"
#endif
#define CLI_DEFAULT_CONFIG BCE_SYSCONFDIR "/bedrock-cost-exporter/bedrock-cost-exporter.conf"

struct cli {
	const char *config_file;
	const char *listen_address;
	const char *telemetry_path;
	const char *web_config_file; /* "" = none */
	enum log_level log_level;
	enum log_format log_format;
	long shard, total_shards; /* --shard, --total-shards */
	bool check_config;
	bool once;
	bool version;
	bool help;
};

/*
 * Parses @argv into @out (strings point into @argv). Returns 0, or -EINVAL
 * after writing a one-line error to @err (the caller prints it and exits 2).
 */
int cli_parse(int argc, char **argv, struct cli *out, FILE *err);

/* Writes the usage text: flags, then configuration keys, signals, exit codes. */
void cli_usage(FILE *f);

#endif
