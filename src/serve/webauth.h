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
 * Thread-safe: called from libmicrohttpd's threads and the server's bcrypt
 * workers. The webauth outlives every pending check it made.
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

enum webauth_verdict { WEBAUTH_OK, WEBAUTH_UNAUTHORIZED, WEBAUTH_FORBIDDEN, WEBAUTH_PENDING };

/* A password check that needs bcrypt; it holds a copy of the password until freed. */
struct webauth_pending;

/*
 * Checks the client certificate and basic auth of a request; libmicrohttpd's
 * threads. A password whose success is cached (SHA-256 of user, password and
 * hash) is answered at once. One that needs bcrypt (tens to hundreds of
 * milliseconds) is checked here when @later is NULL; otherwise WEBAUTH_PENDING
 * is returned and *@later holds the check, which the caller owns: it runs it
 * with webauth_pending_run() in a thread of its choice and frees it with
 * webauth_pending_free(). WEBAUTH_PENDING only ever comes with @later set.
 * An unknown user name costs the same bcrypt as a configured user.
 */
enum webauth_verdict webauth_check(struct webauth *a, struct MHD_Connection *c,
				   struct webauth_pending **later);

/*
 * Runs the bcrypt check of @p: WEBAUTH_OK (remembered in the cache) or
 * WEBAUTH_UNAUTHORIZED. Any thread, no lock held; @p stays the caller's.
 */
enum webauth_verdict webauth_pending_run(struct webauth_pending *p);

/* Zeroes and frees @p (NULL is fine). */
void webauth_pending_free(struct webauth_pending *p);

/* Adds the configured http_server_config.headers to @r. */
void webauth_add_headers(struct webauth *a, struct MHD_Response *r);

/* Constant-time check of @password against bcrypt @hash (exposed for tests). */
bool webauth_bcrypt_ok(const char *password, const char *hash);

#endif
