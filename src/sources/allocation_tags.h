/*
 * allocation_tags.h - the source "allocation_tags": whether each attribution
 * and tag-label key is an active cost allocation tag (ListCostAllocationTags),
 * checked every cost_explorer.allocation_tags_interval seconds; spend cannot
 * be grouped by an inactive key. Exports bedrock_cost_allocation_tag_active
 * and warns once when keys are inactive. Poller thread.
 */
#ifndef BCE_ALLOCATION_TAGS_H
#define BCE_ALLOCATION_TAGS_H

#include "sources/source.h"

extern const struct source_def allocation_tags_source;

#endif
