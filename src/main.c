/*
 * main.c - start-up, signals and shutdown.
 *
 * Threads: main blocks every signal before any other thread exists, then
 * waits for them in sigwait(); the poller thread does all AWS work; the HTTP
 * server's threads only serve snapshots. No work happens in a signal handler.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/files.h"
#include "base/log.h"
#include "base/util.h"
#include "base/version.h"
#include "config/cli.h"
#include "config/conf.h"
#include "engine/poller.h"
#include "serve/notify.h"
#include "serve/server.h"
#include "serve/webauth.h"

#define MAX_CONNECTIONS 256
#define CONNECTION_TIMEOUT 10 /* seconds */
#define SERVER_THREADS 2
#define PER_IP_CONNECTIONS 64

static int check_config(const char *path, const char *web_config)
{
	struct textlist errors = { 0 };
	if (*web_config) {
		struct webconfig *w = webconfig_load(web_config, &errors);
		if (w)
			printf("%s: web configuration OK\n", web_config);
		webconfig_free(w);
	}
	struct conf *c = conf_load(path, &errors);
	bool bad = !c || errors.n;
	for (size_t i = 0; i < errors.n; i++)
		fprintf(stderr, "%s\n", errors.v[i]);
	textlist_free(&errors);
	if (bad) {
		conf_free(c);
		return 1;
	}
	printf("%s: configuration OK\n", path);
	conf_free(c);
	return 0;
}

static struct conf *load_or_log(const char *path)
{
	struct textlist errors = { 0 };
	struct conf *c = conf_load(path, &errors);
	for (size_t i = 0; i < errors.n; i++)
		log_error("invalid configuration", "error", errors.v[i]);
	textlist_free(&errors);
	return c;
}

static int run_once(struct conf *c, const struct cli *cli)
{
	struct poller_opts po = { .config_path = cli->config_file,
				  .telemetry_path = cli->telemetry_path };
	struct poller *p = poller_new(c, &po);
	if (!p)
		return 1;
	struct buf out;
	buf_init(&out, (size_t)1 << 30);
	int rc = poller_run_once(p, &out);
	if (out.data)
		fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	poller_free(p);
	return rc ? 1 : 0;
}

static int run_daemon(struct conf *c, const struct cli *cli)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* no use yet; their default action would end the process (a stray `kill -USR1`) */
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);

	struct webauth *auth = NULL;
	warn_if_world_readable(cli->web_config_file, "--web.config.file");
	if (*cli->web_config_file) {
		struct textlist errors = { 0 };
		auth = webauth_new(cli->web_config_file, &errors);
		for (size_t i = 0; i < errors.n; i++)
			log_error("invalid web configuration", "error", errors.v[i]);
		textlist_free(&errors);
		if (!auth) {
			conf_free(c);
			return 1;
		}
	}
	struct poller_opts po = { .config_path = cli->config_file,
				  .telemetry_path = cli->telemetry_path };
	struct poller *p = poller_new(c, &po);
	if (!p) {
		webauth_free(auth);
		return 1;
	}
	/* the first snapshot exists before anyone can connect */
	poller_prepare(p);
	/* listen before the poller runs: a port in use ends start-up before any AWS request */
	struct server_opts so = {
		.listen_address = cli->listen_address,
		.auth = auth,
		.per_ip_connections = PER_IP_CONNECTIONS,
		.telemetry_path = cli->telemetry_path,
		.max_connections = MAX_CONNECTIONS,
		.connection_timeout = CONNECTION_TIMEOUT,
		.threads = SERVER_THREADS,
	};
	struct server *s = server_start(&so);
	if (!s) {
		poller_free(p);
		webauth_free(auth);
		return 1;
	}
	if (poller_start(p)) {
		server_stop(s);
		poller_free(p);
		webauth_free(auth);
		return 1;
	}
	log_info("started", "version", BCE_VERSION, "config", cli->config_file);
	notify_systemd("READY=1\nSTATUS=serving; /-/ready tells when every source has data");

	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP received, reloading configuration");
			notify_systemd("RELOADING=1");
			poller_reload(p);
			notify_systemd("READY=1");
			continue;
		}
		log_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		notify_systemd("STOPPING=1");
		break;
	}
	server_stop(s);
	poller_stop(p);
	poller_free(p);
	webauth_free(auth);
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct cli cli;
	if (cli_parse(argc, argv, &cli, stderr))
		return 2;
	if (cli.help) {
		cli_usage(stdout);
		return 0;
	}
	if (cli.version) {
		printf("bedrock-cost-exporter %s (revision %s, libcurl %s)\n", BCE_VERSION,
		       BCE_REVISION, curl_version_info(CURLVERSION_NOW)->version);
		return 0;
	}
	conf_set_sharding(cli.shard, cli.total_shards);
	if (cli.check_config)
		return check_config(cli.config_file, cli.web_config_file);

	log_setup(cli.log_level, cli.log_format);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_error("cannot initialise libcurl");
		return 1;
	}
	int rc = 1;
	struct conf *c = load_or_log(cli.config_file);
	if (c)
		rc = cli.once ? run_once(c, &cli) : run_daemon(c, &cli);
	curl_global_cleanup();
	return rc;
}
