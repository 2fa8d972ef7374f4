/*
 * webconfig.c - see webconfig.h. libyaml's document loader builds a node
 * tree; the walk below checks every mapping against the keys it may hold.
 */
#include "serve/webconfig.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/files.h"
#include "base/util.h"

#define MAX_WEB_CONFIG ((size_t)1024 * 1024)

struct walk {
	yaml_document_t *doc;
	const char *path;
	char *dir; /* for relative file names */
	struct textlist *errors;
	struct webconfig *w;
};

static void err_at(struct walk *x, const yaml_node_t *n, const char *fmt, const char *a)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, a ? a : "");
	textlist_push(x->errors, xasprintf("%s:%zu: %s", x->path, n ? n->start_mark.line + 1 : 0, msg));
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A scalar string value, or an error. */
static char *get_string(struct walk *x, const char *key, const yaml_node_t *v)
{
	const char *s = scalar(v);
	if (!s) {
		err_at(x, v, "%s: expected a string", key);
		return NULL;
	}
	return xstrdup(s);
}

static char *get_file(struct walk *x, const char *key, const yaml_node_t *v)
{
	char *s = get_string(x, key, v);
	if (!s || !*s || s[0] == '/')
		return s;
	char *full = xasprintf("%s/%s", x->dir, s);
	free(s);
	return full;
}

static int parse_version(const char *s, enum tls_version *out)
{
	static const struct {
		const char *name;
		enum tls_version v;
	} t[] = { { "TLS10", TLS_V10 }, { "TLS11", TLS_V11 }, { "TLS12", TLS_V12 }, { "TLS13", TLS_V13 } };
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (s && strcmp(s, t[i].name) == 0) {
			*out = t[i].v;
			return 0;
		}
	return -EINVAL;
}

static const char *const auth_names[] = { "NoClientCert", "RequestClientCert",
					  "RequireAnyClientCert", "VerifyClientCertIfGiven",
					  "RequireAndVerifyClientCert" };

const char *webconfig_client_auth_name(enum client_auth a)
{
	return auth_names[a];
}

static bool parse_bool(const char *s, bool *out)
{
	if (!s)
		return false;
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "yes") == 0) {
		*out = true;
		return true;
	}
	if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "no") == 0) {
		*out = false;
		return true;
	}
	return false;
}

typedef void (*pair_fn)(struct walk *x, const char *key, const yaml_node_t *k, const yaml_node_t *v);

/* Calls @fn for every key of mapping @m. */
static void each_pair(struct walk *x, const yaml_node_t *m, const char *what, pair_fn fn)
{
	if (!m || m->type != YAML_MAPPING_NODE) {
		/* an empty value ("tls_server_config:") is a null scalar: nothing to do */
		const char *s = scalar(m);
		if (s && (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0))
			return;
		err_at(x, m, "%s: expected a mapping", what);
		return;
	}
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		const yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
		const char *key = scalar(k);
		if (!key) {
			err_at(x, k, "%s: keys must be strings", what);
			continue;
		}
		fn(x, key, k, v);
	}
}

static void tls_pair(struct walk *x, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
	struct webconfig *w = x->w;
	if (strcmp(key, "cert_file") == 0) {
		free(w->cert_file);
		w->cert_file = get_file(x, key, v);
	} else if (strcmp(key, "key_file") == 0) {
		free(w->key_file);
		w->key_file = get_file(x, key, v);
	} else if (strcmp(key, "client_ca_file") == 0) {
		free(w->client_ca_file);
		w->client_ca_file = get_file(x, key, v);
	} else if (strcmp(key, "client_auth_type") == 0) {
		const char *s = scalar(v);
		bool ok = false;
		for (size_t i = 0; s && i < sizeof(auth_names) / sizeof(auth_names[0]); i++)
			if (strcmp(s, auth_names[i]) == 0) {
				w->client_auth = (enum client_auth)i;
				ok = true;
			}
		if (!ok)
			err_at(x, v, "tls_server_config.client_auth_type: unknown value \"%s\"", s ? s : "?");
	} else if (strcmp(key, "min_version") == 0 || strcmp(key, "max_version") == 0) {
		enum tls_version *dst = key[1] == 'i' ? &w->min_version : &w->max_version;
		if (parse_version(scalar(v), dst))
			err_at(x, v, "tls_server_config.%s: expected TLS10, TLS11, TLS12 or TLS13", key);
	} else if (strcmp(key, "prefer_server_cipher_suites") == 0) {
		if (!parse_bool(scalar(v), &w->prefer_server_cipher_suites))
			err_at(x, v, "tls_server_config.%s: expected true or false", key);
	} else if (strcmp(key, "cipher_suites") == 0 || strcmp(key, "curve_preferences") == 0 ||
		   strcmp(key, "client_allowed_sans") == 0 || strcmp(key, "cert") == 0 ||
		   strcmp(key, "key") == 0 || strcmp(key, "client_ca") == 0) {
		err_at(x, k, "tls_server_config.%s: not supported by bedrock-cost-exporter", key);
	} else {
		err_at(x, k, "tls_server_config: unknown key \"%s\"", key);
	}
}

static const char *const allowed_headers[] = { "Strict-Transport-Security", "X-Frame-Options",
					       "X-Content-Type-Options", "X-XSS-Protection",
					       "Content-Security-Policy", NULL };

static void header_pair(struct walk *x, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
	bool ok = false;
	for (const char *const *h = allowed_headers; *h; h++)
		ok = ok || strcmp(*h, key) == 0;
	if (!ok) {
		err_at(x, k, "http_server_config.headers: header \"%s\" may not be set", key);
		return;
	}
	const char *s = scalar(v);
	if (!s || strpbrk(s, "\r\n")) {
		err_at(x, v, "http_server_config.headers.%s: expected a one-line string", key);
		return;
	}
	struct webconfig *w = x->w;
	w->headers = xrealloc(w->headers, (w->nheaders + 1) * sizeof(*w->headers));
	w->headers[w->nheaders++] = (struct web_header){ xstrdup(key), xstrdup(s) };
}

static void http_pair(struct walk *x, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
	if (strcmp(key, "headers") == 0) {
		each_pair(x, v, "http_server_config.headers", header_pair);
	} else if (strcmp(key, "http2") == 0) {
		bool b;
		if (!parse_bool(scalar(v), &b))
			err_at(x, v, "http_server_config.http2: expected true or false%s", NULL);
		/* HTTP/1.1 only here; the toolkit's default of true is accepted */
	} else {
		err_at(x, k, "http_server_config: unknown key \"%s\"", key);
	}
}

static void user_pair(struct walk *x, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
	(void)k;
	const char *h = scalar(v);
	if (!h || strlen(h) != 60 || h[0] != '$' || h[1] != '2' ||
	    (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$') {
		err_at(x, v, "basic_auth_users.%s: expected a bcrypt hash ($2y$...)", key);
		return;
	}
	struct webconfig *w = x->w;
	for (size_t i = 0; i < w->nusers; i++)
		if (strcmp(w->users[i].name, key) == 0) {
			err_at(x, k, "basic_auth_users: user \"%s\" listed twice", key);
			return;
		}
	w->users = xrealloc(w->users, (w->nusers + 1) * sizeof(*w->users));
	w->users[w->nusers++] = (struct web_user){ xstrdup(key), xstrdup(h) };
}

static void top_pair(struct walk *x, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
	if (strcmp(key, "tls_server_config") == 0) {
		each_pair(x, v, key, tls_pair);
	} else if (strcmp(key, "http_server_config") == 0) {
		each_pair(x, v, key, http_pair);
	} else if (strcmp(key, "basic_auth_users") == 0) {
		each_pair(x, v, key, user_pair);
	} else {
		err_at(x, k, "unknown key \"%s\"", key);
	}
}

void webconfig_free(struct webconfig *w)
{
	if (!w)
		return;
	free(w->cert_file);
	free(w->key_file);
	free(w->client_ca_file);
	for (size_t i = 0; i < w->nusers; i++) {
		free(w->users[i].name);
		free_secret(w->users[i].hash);
	}
	free(w->users);
	for (size_t i = 0; i < w->nheaders; i++) {
		free(w->headers[i].name);
		free(w->headers[i].value);
	}
	free(w->headers);
	free(w);
}

struct webconfig *webconfig_parse(const char *path, const char *text, size_t len,
				  struct textlist *errors)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct webconfig *w = xcalloc(1, sizeof(*w));
	w->min_version = TLS_V12;
	w->max_version = TLS_V13;
	size_t nerr = errors->n;
	char *pathcopy = xstrdup(path);
	struct walk x = { &doc, path, xstrdup(dirname(pathcopy)), errors, w };
	free(pathcopy);

	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		textlist_push(errors, xasprintf("%s:%zu: %s", path, parser.problem_mark.line + 1,
					       parser.problem ? parser.problem : "invalid YAML"));
		yaml_parser_delete(&parser);
		free(x.dir);
		webconfig_free(w);
		return NULL;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root) /* an empty file is a valid, empty configuration */
		each_pair(&x, root, "web configuration", top_pair);

	bool has_cert = w->cert_file && *w->cert_file, has_key = w->key_file && *w->key_file;
	w->tls = has_cert || has_key;
	if (has_cert != has_key)
		textlist_push(errors, xasprintf("%s: tls_server_config needs both cert_file and key_file",
					       path));
	if (!w->tls && (w->client_ca_file || w->client_auth != CLIENT_AUTH_NONE))
		textlist_push(errors, xasprintf("%s: client certificate settings need cert_file and key_file",
					       path));
	if ((w->client_auth == CLIENT_AUTH_VERIFY_IF_GIVEN ||
	     w->client_auth == CLIENT_AUTH_REQUIRE_VERIFY) &&
	    !(w->client_ca_file && *w->client_ca_file))
		textlist_push(errors, xasprintf("%s: client_auth_type %s needs client_ca_file", path,
					       auth_names[w->client_auth]));
	if (w->min_version > w->max_version)
		textlist_push(errors, xasprintf("%s: min_version is above max_version", path));

	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	free(x.dir);
	if (errors->n > nerr) {
		webconfig_free(w);
		return NULL;
	}
	return w;
}

struct webconfig *webconfig_load(const char *path, struct textlist *errors)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_file_max(path, MAX_WEB_CONFIG, &text, &len);
	if (rc) {
		textlist_push(errors, xasprintf("%s: cannot read: %s", path,
					       rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc)));
		return NULL;
	}
	struct webconfig *w = webconfig_parse(path, text, len, errors);
	free_secret(text);
	return w;
}

char *webconfig_tls_priorities(const struct webconfig *w)
{
	struct buf b;
	buf_init(&b, 512);
	buf_puts(&b, "NORMAL:-VERS-ALL");
	static const struct {
		enum tls_version v;
		const char *name;
	} vs[] = { { TLS_V10, "TLS1.0" }, { TLS_V11, "TLS1.1" }, { TLS_V12, "TLS1.2" }, { TLS_V13, "TLS1.3" } };
	for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++)
		if (vs[i].v >= w->min_version && vs[i].v <= w->max_version)
			buf_printf(&b, ":+VERS-%s", vs[i].name);
	if (w->prefer_server_cipher_suites)
		buf_puts(&b, ":%SERVER_PRECEDENCE");
	return buf_steal(&b, NULL);
}
