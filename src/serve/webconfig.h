/*
 * webconfig.h - the exporter-toolkit web configuration file (--web.config.file),
 * the same web-config.yml users already have for node_exporter:
 *
 *   tls_server_config:     cert_file, key_file, client_auth_type, client_ca_file,
 *                          min_version, max_version, prefer_server_cipher_suites
 *   http_server_config:    headers (the five the toolkit allows), http2 (accepted, no effect)
 *   basic_auth_users:      user: bcrypt hash
 *
 * Unknown keys, and toolkit keys this exporter cannot honour (cipher_suites,
 * curve_preferences, client_allowed_sans), are errors: a security setting is
 * never silently ignored. Parsing is pure (no network); thread-safe.
 */
#ifndef BCE_WEBCONFIG_H
#define BCE_WEBCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/textlist.h"

enum client_auth {
	CLIENT_AUTH_NONE,            /* NoClientCert */
	CLIENT_AUTH_REQUEST,         /* RequestClientCert */
	CLIENT_AUTH_REQUIRE_ANY,     /* RequireAnyClientCert */
	CLIENT_AUTH_VERIFY_IF_GIVEN, /* VerifyClientCertIfGiven */
	CLIENT_AUTH_REQUIRE_VERIFY,  /* RequireAndVerifyClientCert */
};

/* TLS protocol versions, ordered. */
enum tls_version { TLS_V10 = 10, TLS_V11 = 11, TLS_V12 = 12, TLS_V13 = 13 };

struct web_user {
	char *name;
	char *hash; /* bcrypt ($2a$, $2b$ or $2y$) */
};

struct web_header {
	char *name;
	char *value;
};

struct webconfig {
	bool tls;
	char *cert_file; /* paths as written, resolved against the file's directory */
	char *key_file;
	char *client_ca_file;
	enum client_auth client_auth;
	enum tls_version min_version, max_version;
	bool prefer_server_cipher_suites;
	struct web_user *users;
	size_t nusers;
	struct web_header *headers;
	size_t nheaders;
};

/*
 * Parses @text (the contents of @path, used for messages and to resolve
 * relative file names). Returns a new configuration (caller frees with
 * webconfig_free) or NULL with "file:line: message" strings in @errors.
 */
struct webconfig *webconfig_parse(const char *path, const char *text, size_t len,
				  struct textlist *errors);
/* Reads and parses @path (at most 1 MiB). */
struct webconfig *webconfig_load(const char *path, struct textlist *errors);
void webconfig_free(struct webconfig *w);

/* "RequireAndVerifyClientCert" etc. */
const char *webconfig_client_auth_name(enum client_auth a);

/* The GnuTLS priority string for the configured versions. Caller frees. */
char *webconfig_tls_priorities(const struct webconfig *w);

#endif
