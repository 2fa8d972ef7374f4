/*
 * webauth.c - see webauth.h.
 */
#include "serve/webauth.h"

#include <crypt.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/files.h"
#include "base/log.h"
#include "base/util.h"

#define MAX_CHAIN 16
#define CACHE_SLOTS 64
#define MAX_PEM ((size_t)1024 * 1024)

struct tls_gen {
	gnutls_pcert_st pcert[MAX_CHAIN];
	unsigned int n;
	gnutls_privkey_t key;
	struct tls_gen *older; /* kept until shutdown: a handshake may still use them */
};

struct file_id {
	time_t mtime;
	long mtime_ns;
	off_t size;
	ino_t ino;
};

struct webauth {
	pthread_mutex_t mu;
	char *path;
	struct webconfig *initial; /* as at start: TLS settings */
	struct webconfig *cur;     /* users and headers, re-read on change */
	struct file_id cur_id;
	double checked_at;
	char *reload_error;

	char *trust_pem;
	struct tls_gen *tls;
	struct file_id cert_id, key_id;
	char *tls_error;

	unsigned char cache[CACHE_SLOTS][32]; /* SHA-256 of user, password and hash that passed */
	unsigned int cache_next;
	unsigned long users_gen;  /* bumped when a reload replaces the users */
	unsigned char name_key[32]; /* random: which user an unknown name stands in for */
};

/* A password check waiting for bcrypt: copies, so that it can run in any thread. */
struct webauth_pending {
	struct webauth *a;
	char *password;
	char *hash;   /* the user's, or a stand-in user's for an unknown name */
	bool known;   /* the name is a configured user */
	unsigned long users_gen;
	unsigned char digest[32];
};

static struct webauth *tls_owner; /* the GnuTLS callback has no user pointer */

static int file_id(const char *path, struct file_id *id)
{
	struct stat st;
	if (stat(path, &st))
		return -errno;
	*id = (struct file_id){ st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size, st.st_ino };
	return 0;
}

static bool same_id(const struct file_id *a, const struct file_id *b)
{
	return a->mtime == b->mtime && a->mtime_ns == b->mtime_ns && a->size == b->size &&
	       a->ino == b->ino;
}

struct webauth *webauth_new(const char *path, struct textlist *errors)
{
	struct webconfig *w = webconfig_load(path, errors);
	if (!w)
		return NULL;
	struct webauth *a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->mu, NULL);
	a->path = xstrdup(path);
	a->initial = w;
	a->cur = webconfig_load(path, errors); /* a separate copy that reloads replace */
	if (!a->cur) {
		webauth_free(a);
		return NULL;
	}
	file_id(path, &a->cur_id);
	a->checked_at = mono_now();
	if (gnutls_rnd(GNUTLS_RND_RANDOM, a->name_key, sizeof(a->name_key)) < 0) {
		textlist_push(errors, xasprintf("%s: no random bytes for basic auth", path));
		webauth_free(a);
		return NULL;
	}
	if (w->tls) {
		const char *ca = w->client_ca_file && *w->client_ca_file ? w->client_ca_file : NULL;
		/* libmicrohttpd asks for a client certificate only when it has a trust
		 * list: without client_ca_file, the server's own certificate stands in */
		if (!ca && w->client_auth != CLIENT_AUTH_NONE)
			ca = w->cert_file;
		if (ca) {
			int rc = read_file_max(ca, MAX_PEM, &a->trust_pem, NULL);
			if (rc) {
				textlist_push(errors, xasprintf("%s: cannot read %s: %s", path, ca,
							       strerror(-rc)));
				webauth_free(a);
				return NULL;
			}
		}
	}
	return a;
}

static void free_gen(struct tls_gen *g)
{
	while (g) {
		struct tls_gen *o = g->older;
		for (unsigned int i = 0; i < g->n; i++)
			gnutls_pcert_deinit(&g->pcert[i]);
		if (g->key)
			gnutls_privkey_deinit(g->key);
		free(g);
		g = o;
	}
}

void webauth_free(struct webauth *a)
{
	if (!a)
		return;
	if (tls_owner == a)
		tls_owner = NULL;
	webconfig_free(a->initial);
	webconfig_free(a->cur);
	free(a->path);
	free(a->reload_error);
	free(a->trust_pem);
	free(a->tls_error);
	free_gen(a->tls);
	secure_zero(a->cache, sizeof(a->cache));
	secure_zero(a->name_key, sizeof(a->name_key));
	pthread_mutex_destroy(&a->mu);
	free(a);
}

const struct webconfig *webauth_initial(const struct webauth *a)
{
	return a->initial;
}

const char *webauth_trust_pem(const struct webauth *a)
{
	return a->trust_pem;
}

/* Loads cert_file and key_file into a new generation. Returns 0 or -EINVAL with @err. */
static int load_gen(const struct webconfig *w, struct tls_gen **out, char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL;
	struct tls_gen *g = xcalloc(1, sizeof(*g));
	int rc = read_file_max(w->cert_file, MAX_PEM, &cert, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", w->cert_file, strerror(-rc));
		goto fail;
	}
	rc = read_file_max(w->key_file, MAX_PEM, &key, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", w->key_file, strerror(-rc));
		goto fail;
	}
	gnutls_datum_t cd = { (unsigned char *)cert, (unsigned int)strlen(cert) };
	gnutls_datum_t kd = { (unsigned char *)key, (unsigned int)strlen(key) };
	g->n = MAX_CHAIN;
	int grc = gnutls_pcert_list_import_x509_raw(g->pcert, &g->n, &cd, GNUTLS_X509_FMT_PEM, 0);
	if (grc < 0) {
		g->n = 0;
		snprintf(err, errlen, "%s: %s", w->cert_file, gnutls_strerror(grc));
		rc = -EINVAL;
		goto fail;
	}
	gnutls_privkey_init(&g->key);
	grc = gnutls_privkey_import_x509_raw(g->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (grc < 0) {
		snprintf(err, errlen, "%s: %s", w->key_file, gnutls_strerror(grc));
		rc = -EINVAL;
		goto fail;
	}
	free(cert);
	free_secret(key);
	*out = g;
	return 0;
fail:
	free(cert);
	free_secret(key);
	free_gen(g);
	return rc ? rc : -EINVAL;
}

/* Re-reads the certificate and key when either file changed. Under a->mu. */
static void maybe_reload_tls(struct webauth *a)
{
	const struct webconfig *w = a->initial;
	struct file_id c, k;
	if (file_id(w->cert_file, &c) || file_id(w->key_file, &k))
		return; /* mid-rotation: keep what we have */
	if (a->tls && same_id(&c, &a->cert_id) && same_id(&k, &a->key_id))
		return;
	char err[512];
	struct tls_gen *g = NULL;
	if (load_gen(w, &g, err, sizeof(err))) {
		if (!same_failure(a->tls_error, err))
			log_error("TLS certificate not (re)loaded; serving the previous one", "error", err);
		free(a->tls_error);
		a->tls_error = xstrdup(err);
		a->cert_id = c; /* do not retry every handshake; a new write changes the id again */
		a->key_id = k;
		return;
	}
	if (a->tls)
		log_info("TLS certificate reloaded", "cert_file", w->cert_file);
	g->older = a->tls;
	a->tls = g;
	a->cert_id = c;
	a->key_id = k;
	free(a->tls_error);
	a->tls_error = NULL;
}

int webauth_install_tls(struct webauth *a)
{
	tls_owner = a;
	pthread_mutex_lock(&a->mu);
	maybe_reload_tls(a);
	int rc = a->tls ? 0 : -EINVAL;
	pthread_mutex_unlock(&a->mu);
	return rc;
}

static int cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
			 const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			 gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	(void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
	struct webauth *a = tls_owner;
	if (!a)
		return -1;
	pthread_mutex_lock(&a->mu);
	maybe_reload_tls(a);
	struct tls_gen *g = a->tls;
	pthread_mutex_unlock(&a->mu);
	if (!g)
		return -1;
	*pcert = g->pcert;
	*pcert_length = g->n;
	*pkey = g->key;
	return 0;
}

void *webauth_cert_callback(void)
{
	return (void *)&cert_callback;
}

/* Re-reads the web configuration if it changed; at most once a second. Under a->mu. */
static void maybe_reload_config(struct webauth *a)
{
	double now = mono_now();
	if (now - a->checked_at < 1.0)
		return;
	a->checked_at = now;
	struct file_id id;
	if (file_id(a->path, &id) || same_id(&id, &a->cur_id))
		return;
	struct textlist errors = { 0 };
	struct webconfig *w = webconfig_load(a->path, &errors);
	a->cur_id = id;
	if (!w) {
		const char *e = errors.n ? errors.v[0] : "invalid";
		if (!same_failure(a->reload_error, e))
			log_error("web configuration change rejected; keeping the previous one",
				  "error", e);
		free(a->reload_error);
		a->reload_error = xstrdup(e);
		textlist_free(&errors);
		return;
	}
	if (w->tls != a->initial->tls)
		log_warn("web configuration: turning TLS on or off needs a restart", "file", a->path);
	webconfig_free(a->cur);
	a->cur = w;
	free(a->reload_error);
	a->reload_error = NULL;
	secure_zero(a->cache, sizeof(a->cache)); /* users or hashes may have changed */
	a->users_gen++; /* and checks under way must not remember what the old file allowed */
	log_info("web configuration reloaded", "file", a->path);
}

bool webauth_bcrypt_ok(const char *password, const char *hash)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *out = crypt_r(password, hash, cd);
	bool ok = false;
	if (out && out[0] != '*' && strlen(out) == strlen(hash)) {
		unsigned char diff = 0;
		for (size_t i = 0; hash[i]; i++)
			diff |= (unsigned char)(out[i] ^ hash[i]);
		ok = diff == 0;
	}
	secure_zero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

static void digest(const char *user, const char *password, const char *hash, unsigned char out[32])
{
	struct buf b;
	buf_init(&b, 64 * 1024);
	buf_puts(&b, user);
	buf_putc(&b, '\0');
	buf_puts(&b, password);
	buf_putc(&b, '\0');
	buf_puts(&b, hash);
	gnutls_hash_fast(GNUTLS_DIG_SHA256, b.data, b.len, out);
	secure_zero(b.data, b.len);
	buf_free(&b);
}

/*
 * The hash an unknown user name is checked against: the hash of one configured user, the
 * same one for the same name for the life of the process, picked by a keyed hash of the
 * name (so the pick cannot be steered or predicted). An unknown name then costs exactly
 * what a configured user costs, whatever costs the users' hashes have (10, 12, one of
 * each...), and repeated tries of one name answer the same way, as they would for a user
 * who exists. A fixed dummy hash (the old cost-10 one) gave names away as soon as a user's
 * cost differed: 52 ms against 206 ms at cost 12. Checking the password against another
 * user's salt reveals nothing: the result is thrown away. Under a->mu, nusers > 0.
 */
static const char *stand_in_hash(const struct webauth *a, const char *user)
{
	unsigned char mac[32];
	gnutls_hmac_fast(GNUTLS_MAC_SHA256, a->name_key, sizeof(a->name_key), user, strlen(user),
			 mac);
	uint64_t pick = 0;
	for (int i = 0; i < 8; i++)
		pick = pick << 8 | mac[i];
	return a->cur->users[pick % a->cur->nusers].hash;
}

void webauth_pending_free(struct webauth_pending *p)
{
	if (!p)
		return;
	free_secret(p->password);
	free_secret(p->hash);
	secure_zero(p, sizeof(*p));
	free(p);
}

enum webauth_verdict webauth_pending_run(struct webauth_pending *p)
{
	/* unknown names cost the same bcrypt as a user (stand_in_hash()), and never pass */
	bool ok = webauth_bcrypt_ok(p->password, p->hash) && p->known;
	if (!ok)
		return WEBAUTH_UNAUTHORIZED;
	struct webauth *a = p->a;
	pthread_mutex_lock(&a->mu);
	if (a->users_gen == p->users_gen) /* not across a reload: the cache was emptied */
		memcpy(a->cache[a->cache_next++ % CACHE_SLOTS], p->digest, 32);
	pthread_mutex_unlock(&a->mu);
	return WEBAUTH_OK;
}

static enum webauth_verdict check_basic(struct webauth *a, struct MHD_Connection *c,
					struct webauth_pending **later)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(c, &pass);
	enum webauth_verdict v = WEBAUTH_UNAUTHORIZED;
	struct webauth_pending *p = NULL;
	if (!user || !pass || strlen(user) > 1024 || strlen(pass) > 1024)
		goto out;
	p = xcalloc(1, sizeof(*p));
	p->a = a;
	/* the same steps for a user and an unknown name: only bcrypt's answer differs */
	pthread_mutex_lock(&a->mu);
	const char *hash = NULL;
	for (size_t i = 0; i < a->cur->nusers; i++)
		if (strcmp(a->cur->users[i].name, user) == 0)
			hash = a->cur->users[i].hash;
	p->known = hash != NULL;
	if (!hash && a->cur->nusers)
		hash = stand_in_hash(a, user);
	bool cached = false;
	if (hash) {
		p->hash = xstrdup(hash);
		p->users_gen = a->users_gen;
		digest(user, pass, hash, p->digest);
		for (unsigned int i = 0; i < CACHE_SLOTS; i++)
			cached |= memcmp(a->cache[i], p->digest, 32) == 0;
	}
	pthread_mutex_unlock(&a->mu);
	if (!hash)
		goto out; /* no users (webauth_check() does not ask then) */
	if (cached && p->known) {
		v = WEBAUTH_OK;
		goto out;
	}
	p->password = xstrdup(pass);
	if (later) {
		*later = p;
		p = NULL;
		v = WEBAUTH_PENDING;
	} else {
		v = webauth_pending_run(p);
	}
out:
	webauth_pending_free(p);
	if (pass) {
		secure_zero(pass, strlen(pass));
		MHD_free(pass);
	}
	if (user)
		MHD_free(user);
	return v;
}

static enum webauth_verdict check_cert(struct webauth *a, struct MHD_Connection *c)
{
	enum client_auth mode = a->initial->client_auth;
	if (mode == CLIENT_AUTH_NONE || mode == CLIENT_AUTH_REQUEST)
		return WEBAUTH_OK;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return WEBAUTH_FORBIDDEN;
	gnutls_session_t s = (gnutls_session_t)ci->tls_session;
	unsigned int n = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
	bool present = peers && n > 0;
	if (!present)
		return mode == CLIENT_AUTH_VERIFY_IF_GIVEN ? WEBAUTH_OK : WEBAUTH_FORBIDDEN;
	if (mode == CLIENT_AUTH_REQUIRE_ANY)
		return WEBAUTH_OK;
	unsigned int status = 0;
	if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0)
		return WEBAUTH_FORBIDDEN;
	return WEBAUTH_OK;
}

enum webauth_verdict webauth_check(struct webauth *a, struct MHD_Connection *c,
				   struct webauth_pending **later)
{
	if (a->initial->tls) {
		enum webauth_verdict v = check_cert(a, c);
		if (v != WEBAUTH_OK)
			return v;
	}
	pthread_mutex_lock(&a->mu);
	maybe_reload_config(a);
	bool need_basic = a->cur->nusers > 0;
	pthread_mutex_unlock(&a->mu);
	return need_basic ? check_basic(a, c, later) : WEBAUTH_OK;
}

void webauth_add_headers(struct webauth *a, struct MHD_Response *r)
{
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->cur->nheaders; i++)
		MHD_add_response_header(r, a->cur->headers[i].name, a->cur->headers[i].value);
	pthread_mutex_unlock(&a->mu);
}
