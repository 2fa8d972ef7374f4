/*
 * webauth.h - the runtime side of --web.config.file: basic authentication
 * with bcrypt (cached), client-certificate checks, TLS certificates that can
 * rotate without a restart, and the extra response headers.
 *
 * The web configuration file is re-read when it changes (checked at most once
 * a second), so users, hashes and headers change without a restart; a bad
 * new file is logged once and the previous one kept. Certificate and key
 * files are re-read at the next TLS handshake after they change. Whether TLS
 * is on, the client CA and the TLS versions are fixed at start.
 *
 * Thread-safe: called from libmicrohttpd's threads.
 */
#ifndef BCE_WEBAUTH_H
#define BCE_WEBAUTH_H

#include <microhttpd.h>
#include <stdbool.h>

#include "base/textlist.h"
#include "serve/webconfig.h"

struct webauth;

/* Loads @path. Returns NULL with "file:line: message" errors in @errors. */
struct webauth *webauth_new(const char *path, struct textlist *errors);
/* After the HTTP server has stopped. */
void webauth_free(struct webauth *a);

/* The configuration as loaded at start (for TLS setup). Borrowed. */
const struct webconfig *webauth_initial(const struct webauth *a);

/* PEM text of the client CA (or what triggers a certificate request), or NULL. Borrowed. */
const char *webauth_trust_pem(const struct webauth *a);

/* The GnuTLS certificate callback for MHD_OPTION_HTTPS_CERT_CALLBACK; uses the
 * one webauth given to webauth_install_tls(). */
void *webauth_cert_callback(void);
/* Loads the certificate and key now (start-up check). Returns 0 or -errno (logged). */
int webauth_install_tls(struct webauth *a);

enum webauth_verdict { WEBAUTH_OK, WEBAUTH_UNAUTHORIZED, WEBAUTH_FORBIDDEN };

/* Checks basic auth and the client certificate of a request. */
enum webauth_verdict webauth_check(struct webauth *a, struct MHD_Connection *c);

/* Adds the configured http_server_config.headers to @r. */
void webauth_add_headers(struct webauth *a, struct MHD_Response *r);

/* Constant-time check of @password against bcrypt @hash (exposed for tests). */
bool webauth_bcrypt_ok(const char *password, const char *hash);

#endif
