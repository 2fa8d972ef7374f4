/*
 * project.h - the data the Projects API gives: a Bedrock project, the list
 * of one region, and the catalog of every region. Plain data, filled by the
 * projects source (sources/projects.c), read by attribution, the cost
 * sources and the state file. Not thread-safe; owned by the poller thread.
 */
#ifndef BCE_PROJECT_H
#define BCE_PROJECT_H

#include <stdbool.h>
#include <stddef.h>

struct project_tag {
	char *key;
	char *value;
};

struct project {
	char *id;
	char *name;
	char *arn;    /* "" when the API gives none */
	char *status;
	double created_at; /* Unix seconds */
	struct project_tag *tags; /* sorted by key, keys unique */
	size_t ntags;
};

struct project_list {
	struct project *v;
	size_t n;
};

/* One region's last good listing, of one account. */
struct region_projects {
	char *account;    /* 12 digits; "" = the credentials' own account (no organization) */
	char *region;
	struct project_list projects;
	bool has_data;    /* listed (or restored) at least once */
	char *last_error; /* for complain-once logging; NULL while it succeeds */
	bool attempted;   /* a listing was tried (or restored) */
	double last_success;    /* Unix seconds of the last good listing; 0 = never */
	double failures;        /* listings that failed, since the start */
};

/* Every account's configured regions: by account, then in configuration order. */
struct project_catalog {
	struct region_projects *regions;
	size_t nregions;
};

/* Returns the tag value for @key, or NULL (binary search). */
const char *project_tag(const struct project *p, const char *key);

/* Frees what @p holds (not @p itself). */
void project_free(struct project *p);
void project_list_free(struct project_list *l);
/* Moves @from into @to (freeing what @to held); @from becomes empty. */
void project_list_move(struct project_list *to, struct project_list *from);

/* Number of projects over every region. */
size_t project_catalog_count(const struct project_catalog *c);
/* Every project of every region of account @account (NULL = of every account), in
 * order, as a new array of borrowed pointers (caller frees the array); *n receives the
 * count. */
const struct project **project_catalog_flatten(const struct project_catalog *c,
						const char *account, size_t *n);
/* The first project whose id or name is @key, or NULL. */
const struct project *project_catalog_find(const struct project_catalog *c, const char *key);
void project_catalog_free(struct project_catalog *c);

#endif
